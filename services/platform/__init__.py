"""What every service stands on: settings, the database (roles, migrations, TimescaleDB upkeep),
Kafka topics, the clock, child processes and local ports. Imports `models` only."""
