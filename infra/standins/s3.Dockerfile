# Stand-in for MinIO (not packaged by Debian): moto's S3 server on port 9000, plus the bucket
# initialisation that minio-init does with `mc` (s3_init.py, boto3). Moto keeps objects in memory
# and does not check signatures: good enough to prove the S3 protocol path end to end, not storage.
ARG PYTHON_IMAGE=localhost/damagelens-standin/python:3.11
FROM ${PYTHON_IMAGE}
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
COPY requirements/dev.txt /tmp/dev.txt
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir "$(grep -E '^moto\[server\]==' /tmp/dev.txt)" \
    && rm /tmp/dev.txt
COPY infra/standins/s3_init.py /usr/local/bin/s3_init.py
EXPOSE 9000
CMD ["moto_server", "-H", "0.0.0.0", "-p", "9000"]
