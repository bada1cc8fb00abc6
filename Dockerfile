FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY dialer ./dialer
COPY agent_worker ./agent_worker
COPY campaigns ./campaigns
RUN pip install .
RUN useradd --create-home dialer && mkdir -p /app/var && chown dialer /app/var
USER dialer
CMD ["celery", "-A", "dialer", "worker", "--loglevel", "INFO"]
