# tickflow: the CLI, pipeline actors and executors in one image.
#   docker build -t tickflow:local .
#   docker run --rm tickflow:local --help
# docker-compose.yml runs it as `actors` and `executor`; any other command works too:
#   docker compose run --rm actors data sample --root /data/catalog
FROM node:20-bookworm-slim

ENV NODE_ENV=production \
    TICKFLOW_DATA_ROOT=/data/catalog

WORKDIR /app

# Dependencies first, so code changes do not reinstall them. tsx is a runtime dependency
# (the CLI runs TypeScript directly, no build step), so --omit=dev keeps it.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error \
 && npm cache clean --force

COPY bin/ ./bin/
COPY src/ ./src/
COPY nats.conf ./
COPY examples/ ./examples/

# Non-root: the `node` user (uid 1000) of the base image owns the data directories.
RUN mkdir -p /data/catalog /app/out \
 && chown -R node:node /data /app/out
USER node

# One node process (tsx loaded in-process), so SIGTERM from `docker stop` reaches the code that
# drains in-flight work; bin/tickflow.mjs would run the CLI as a child that never sees it.
ENTRYPOINT ["node", "--import", "tsx", "src/cli/main.ts"]
CMD ["--help"]
