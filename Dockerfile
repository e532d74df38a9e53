# One image for every omnidesk process: compose.yaml (or any orchestrator) picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings MEDIA_ROOT=/app/media

WORKDIR /app
# Dependencies first: a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p omnidesk channels_plugins config && touch omnidesk/__init__.py channels_plugins/__init__.py config/__init__.py \
    && pip install . && pip uninstall -y omnidesk
COPY . .
# Installed (not editable) so the built-in plugins register through their entry points, like a third party's.
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /app omnidesk && mkdir -p /app/media && chown omnidesk /app/media
USER omnidesk

EXPOSE 8000
CMD ["uvicorn", "config.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", "--proxy-headers", "--no-access-log", "--ws-per-message-deflate", "false"]
