"""Idempotent provisioning of everything taskcast needs: tables, bucket, broker topology.

One code path for the embedded moto server, LocalStack and AWS, chosen by ``AWS_ENDPOINT_URL``.
Running it twice changes nothing the second time.
"""
