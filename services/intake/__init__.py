"""Data coming in: school doctors' files (bounded reading, CSV/XLSX import into Kafka), single
screenings submitted through the API or the web pages, and the national fitness upload sheet."""
