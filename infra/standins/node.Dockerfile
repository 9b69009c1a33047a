# Stand-in for node:22-bookworm-slim: Debian 12 ships Node 18, too old for Vite, so the script
# copies this machine's own Node.js (20.x) binary and npm into the build context.
ARG DEBIAN_IMAGE=localhost/damagelens-standin/debian:bookworm
FROM ${DEBIAN_IMAGE}
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
    && node --version && npm --version
# Trust the system CA bundle (this machine reaches the npm registry through its own CA).
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["node"]
