# Koe's image: one image for the web (Daphne), worker and beat services.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# espeak-ng: the local provider's light fallback voice (Piper's voice is a Python wheel).
RUN apt-get update && apt-get install -y --no-install-recommends espeak-ng \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 koe
WORKDIR /app

COPY pyproject.toml README.md mkdocs.yml ./
COPY docs ./docs
COPY koe ./koe
COPY platform ./platform
COPY agents ./agents
COPY tools ./tools
COPY dashboard ./dashboard
COPY manage.py ./
COPY requirements ./requirements
RUN pip install ".[docs]" && pip install --no-deps -r requirements/no-deps.txt
# The documentation site, served at /docs/ (the dashboard's Help).
RUN NO_MKDOCS_2_WARNING=1 mkdocs build --quiet --site-dir /app/site

# Static files are collected at build time; production settings need real secrets, so a
# throwaway key is given only to this build step.
RUN SECRET_KEY=build-only-$(python -c 'import secrets; print(secrets.token_urlsafe(60))') \
    FIELD_ENCRYPTION_KEYS=$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') \
    KOE_ENV=production ALLOWED_HOSTS=build STATIC_ROOT=/app/static \
    python manage.py collectstatic --noinput

RUN mkdir -p /data/media && chown -R koe:koe /data
USER koe
ENV KOE_ENV=production STATIC_ROOT=/app/static KOE_VAR_DIR=/data KOE_DOCS_DIR=/app/site
EXPOSE 8000
# No --proxy-headers: Daphne would trust the client-controlled left end of
# X-Forwarded-For; Koe reads it itself per KOE_TRUSTED_PROXIES.
# Koe's server is Daphne with its WebSocket frame handling and a clean exit (koe/server.py).
CMD ["python", "-m", "koe.server", "-b", "0.0.0.0", "-p", "8000"]
