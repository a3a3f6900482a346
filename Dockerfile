# The schoolhealth application image (worker, API, CLI) for docker-compose.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml constraints.txt README.md LICENSE ./
COPY models ./models
COPY streams ./streams
COPY services ./services
COPY dashboards ./dashboards
RUN pip install --no-cache-dir -c constraints.txt . && useradd --system --uid 10001 schoolhealth
USER schoolhealth
ENTRYPOINT ["schoolhealth"]
