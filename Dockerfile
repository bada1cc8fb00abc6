# One image for the dialer's processes: the Celery worker and beat (the default command)
# and the agent worker (`python -m agent_worker start`). See docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# livekit-agents' native libraries (WebRTC, the bundled voice-activity model) need libstdc++.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libstdc++6 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY dialer ./dialer
COPY agent_worker ./agent_worker
COPY campaigns ./campaigns
RUN pip install .
RUN useradd --create-home dialer && mkdir -p /app/var/uploads && chown -R dialer /app/var
USER dialer
CMD ["celery", "-A", "dialer", "worker", "--loglevel", "INFO"]
