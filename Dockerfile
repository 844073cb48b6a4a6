# Image of the application processes: the worker (default command), the webhook service and
# the migration job. docker-compose.yml runs all three from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged account; the code stays owned by root, so the processes cannot change it.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /app \
        --shell /usr/sbin/nologin app

WORKDIR /app

# README.md is the package's long description (pyproject.toml `readme`). No alembic.ini:
# core/db.py configures Alembic in code.
COPY pyproject.toml README.md worker.py ./
COPY core ./core
COPY models ./models
COPY workflows ./workflows
COPY activities ./activities
COPY starter ./starter
COPY webhooks ./webhooks
COPY devstack ./devstack
COPY journeys ./journeys
COPY migrations ./migrations

# Installs the project and its dependencies; `var` (Settings.data_dir) is the only
# directory the processes may write to.
RUN pip install --no-cache-dir . \
    && mkdir -p var \
    && chown app:app var

USER app

EXPOSE 8000

CMD ["python", "worker.py"]
