# tickflow: the CLI, pipeline actors and executors in one image.
#   docker build -t tickflow:local .
#   docker run --rm tickflow:local --help
# docker-compose.yml runs it as `actors` and `executor`; any other command works too:
#   docker compose run --rm actors data sample --root /data/catalog

# Build stage: all dependencies (esbuild, typescript), then `npm run build` → dist/.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/ ./scripts/
COPY src/ ./src/
RUN node scripts/build.mjs

FROM node:20-bookworm-slim

ENV NODE_ENV=production \
    TICKFLOW_DATA_ROOT=/data/catalog

WORKDIR /app

# Dependencies first, so code changes do not reinstall them. Run-time dependencies only: the
# image runs the built JavaScript (no TypeScript loader).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error \
 && npm cache clean --force

COPY --from=build /app/dist/ ./dist/
COPY bin/ ./bin/
COPY nats.conf ./
COPY examples/ ./examples/

# Non-root: the `node` user (uid 1000) of the base image owns the data directories.
RUN mkdir -p /data/catalog /app/out \
 && chown -R node:node /data /app/out
USER node

# One node process running dist/ (bin/tickflow.mjs imports it in-process: no src/ in the image),
# so SIGTERM from `docker stop` reaches the code that drains in-flight work.
ENTRYPOINT ["node", "bin/tickflow.mjs"]
CMD ["--help"]
