"""The Kafka edge outside the Faust app: `client` (an acks=all producer, partition lookups, reading
topics to their end, the CLI's config store, aiokafka's errors mapped into this package's) and
`follower` (the one group-less reader of whole topics)."""
