"""Where jobs keep data: MinIO/S3 through the minio client, local or s3:// files, Milvus."""
