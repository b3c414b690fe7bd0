# flares: `docker run -p 8000:8000 flares` serves with the embedded Valkey in /data;
# docker-compose.yml runs it against a Redis service with separate api and worker containers.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# README.m[d]: the readme is optional for the build; the wildcard lets COPY match nothing.
COPY pyproject.toml README.m[d] ./
COPY aggregator ./aggregator
COPY providers ./providers
RUN pip install --no-cache-dir . \
    && rm -rf /src \
    && useradd --system --uid 10001 --create-home --home-dir /home/flares flares \
    && install -d -o flares -g flares /data

USER flares
WORKDIR /data
# The embedded server keeps its socket and append-only file in FLARES_DATA_DIR.
ENV FLARES_HOST=0.0.0.0 \
    FLARES_DATA_DIR=/data
EXPOSE 8000

CMD ["flares", "serve", "--host", "0.0.0.0"]
