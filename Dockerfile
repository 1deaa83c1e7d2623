# A plain mirror of the README: install the package the same way, run `smarttrade serve`.
# Point it at PostgreSQL with SMARTTRADE_DATABASE_URL (or let it use the embedded one in
# /data), and give it tokens (SMARTTRADE_TOKENS): it refuses to serve a public address
# without them.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 smarttrade
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY clients/python ./clients/python
RUN pip install --no-cache-dir . ./clients/python
RUN mkdir /data && chown smarttrade /data
USER smarttrade
ENV SMARTTRADE_DATA_DIR=/data \
    SMARTTRADE_LISTEN=0.0.0.0:50051
VOLUME /data
EXPOSE 50051
ENTRYPOINT ["smarttrade", "serve"]
