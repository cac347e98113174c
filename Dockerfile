# The streamscore worker: code and the default model in one image.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream ./stream
# EXTRAS=mlflow (as docker-compose.yml builds it) adds the MLflow client for models:/ URIs.
ARG EXTRAS=""
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}"
COPY models ./models
COPY schemas ./schemas
ENV STREAMSCORE_MODEL_DIR=/app/models
# No secret in the image: give STREAMSCORE_SECRET at run time (the workers refuse to start without it).
USER nobody
EXPOSE 9464
CMD ["streamscore", "worker"]
