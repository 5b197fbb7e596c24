"""The account, region and fake credentials every local client and process of the harness uses.

moto accepts any credentials; these are the one copy the harness passes (as boto3 arguments, or as
the environment variables a Lambda function's process gets).
"""

from __future__ import annotations

from typing import Final

REGION: Final = "us-east-1"
ACCOUNT_ID: Final = "123456789012"
FAKE_CREDENTIALS: Final = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# The same credentials as a process's environment (with a session token, as Lambda gives one).
FAKE_CREDENTIALS_ENV: Final = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
