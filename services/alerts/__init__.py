"""The alert queue: the alert service (Kafka into `alerts.alerts`, escalation), the queue's reads
and actions shared by the API and the web pages, and the live feed's LISTEN/NOTIFY hub."""
