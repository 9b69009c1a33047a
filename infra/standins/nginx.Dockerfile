# Stand-in for nginxinc/nginx-unprivileged: Debian's nginx run as uid 101 on port 8080, with the
# same paths (/etc/nginx/conf.d/*.conf, /usr/share/nginx/html) and wget for the health check.
ARG DEBIAN_IMAGE=localhost/damagelens-standin/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx-light wget \
    && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* /etc/nginx/conf.d/* \
    && groupadd --system --gid 101 nginx-app \
    && useradd --system --uid 101 --gid 101 --no-create-home --shell /usr/sbin/nologin nginx-app \
    && mkdir -p /usr/share/nginx/html /tmp/nginx \
    && chown -R 101:101 /usr/share/nginx/html /tmp/nginx /var/lib/nginx
COPY nginx.conf /etc/nginx/nginx.conf
USER 101
EXPOSE 8080
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
