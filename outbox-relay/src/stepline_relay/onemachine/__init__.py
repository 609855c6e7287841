"""One machine only: the stand-in for eventing-rabbitmq's RabbitmqSource adapter
(:mod:`.dispatcher`, run by ``stepline-dispatch``, :mod:`.cli`), so that ``make run``
with a RabbitMQ feeds the functions as the cluster does. In a cluster the adapters do
this; nothing here runs there."""
