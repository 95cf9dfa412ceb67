"""The Kafka edge: reading whole topics group-less (`follower`)."""
