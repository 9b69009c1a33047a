"""minio-init's job for the S3 stand-in: the bucket and a 1-day expiry rule, idempotently."""

import os

import boto3

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ.get("S3_ENDPOINT", "http://minio:9000"),
    aws_access_key_id=os.environ["S3_USER"],
    aws_secret_access_key=os.environ["S3_PASSWORD"],
    region_name="us-east-1",
)
bucket = os.environ["S3_BUCKET"]
if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
    s3.create_bucket(Bucket=bucket)
s3.put_bucket_lifecycle_configuration(
    Bucket=bucket,
    LifecycleConfiguration={"Rules": [{"ID": "expire", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}]},
)
print("bucket", bucket, "ready with", s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"])
