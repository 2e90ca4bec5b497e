"""boto3 sessions and clients for the serverless paths, and botocore's errors in the tool's.

    from mlperf_pilot.serverless.aws import Aws, AwsTarget, aws_errors

    aws = Aws(AwsTarget(region="us-east-1", endpoint_url="http://127.0.0.1:5000"))
    aws.check_credentials()                     # ConfigError (exit 2) when there are none
    with aws_errors("list the bucket", bucket="b", endpoint=aws.target.endpoint_url):
        aws.s3.list_objects_v2(Bucket="b")

Credentials come only from boto3's usual chain (environment, ``--profile``, the shared
files, an instance or container role): this module never reads, writes, logs or prints
them, and the error messages it makes never carry them. ``endpoint_url`` points every
service (S3, SQS, Lambda, IAM) at one S3-compatible server such as moto; leave it empty
for AWS itself.

boto3 is imported on first use only (never on ``import mlperf_pilot``); where it is not
installed, :func:`import_boto3` raises MissingDependencyError naming
``pip install 'mlperf-pilot[serverless]'``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mlperf_pilot.errors import ConfigError, MlperfPilotError, SutError
from mlperf_pilot.extras import import_extra

DEFAULT_REGION = "us-east-1"
_DEPLOY_HINT = "create it with `mlperf-pilot serverless deploy --bucket {bucket} ...`"
_CREDENTIALS_HINT = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass --profile "
                     "(see `aws configure`); for a local moto server any dummy values do")
# ClientError codes that mean the credentials (or their rights) are the problem
_AUTH_CODES = {"AccessDenied", "AccessDeniedException", "AllAccessDisabled",
               "InvalidAccessKeyId", "InvalidClientTokenId", "SignatureDoesNotMatch",
               "ExpiredToken", "ExpiredTokenException", "UnrecognizedClientException",
               "InvalidToken", "AuthFailure", "UnauthorizedOperation"}
_NO_BUCKET_CODES = {"NoSuchBucket"}
_BAD_NAME_CODES = {"InvalidBucketName", "InvalidParameterValueException",
                   "InvalidParameterValue", "ValidationError", "ValidationException"}


def import_boto3() -> Any:
    """boto3, or MissingDependencyError naming the ``serverless`` extra."""
    return import_extra("boto3", package="boto3", extra="serverless",
                        purpose="the serverless commands and --sut serverless")


@dataclass(frozen=True)
class AwsTarget:
    """Where the serverless pieces live. Nothing secret: it may be saved with a result."""

    region: str | None = None  # None: the chain's (AWS_DEFAULT_REGION, the profile), else us-east-1
    endpoint_url: str | None = None  # one S3-compatible endpoint for every service (moto)
    profile: str | None = None  # a named profile of the shared config files
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0  # above SQS's 20 s long poll
    max_attempts: int = 3  # botocore's "standard" retry mode, first try included
    max_pool_connections: int = 32  # at least the SUT's concurrency


class Aws:
    """One boto3 session and its clients (created on first use, shared by threads).

    ``s3``, ``sqs``, ``lambda_`` and ``iam`` are botocore clients (thread-safe); ``client(name)``
    makes any other. Errors raised while making them (no such profile, a bad endpoint URL,
    no region) are ConfigError already; calls on them are wrapped in :func:`aws_errors`.
    """

    def __init__(self, target: AwsTarget | None = None) -> None:
        self.target = target or AwsTarget()
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    @property
    def session(self) -> Any:
        with self._lock:
            if self._session is None:
                self._session = self._new_session()
            return self._session

    @property
    def region(self) -> str:
        return self.session.region_name or DEFAULT_REGION

    def client(self, service: str) -> Any:
        session = self.session
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._new_client(session, service)
            return self._clients[service]

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def sqs(self) -> Any:
        return self.client("sqs")

    @property
    def lambda_(self) -> Any:
        return self.client("lambda")

    @property
    def iam(self) -> Any:
        return self.client("iam")

    def check_credentials(self) -> None:
        """ConfigError (exit 2) when boto3's chain finds no credentials; says nothing of
        the ones it finds."""
        with aws_errors("look up AWS credentials", endpoint=self.target.endpoint_url):
            found = self.session.get_credentials()
        if found is None:
            raise ConfigError("no AWS credentials found (environment, profile or role)",
                              hint=_CREDENTIALS_HINT)

    def account_id(self) -> str:
        """The caller's account (STS), for ARNs; moto answers 123456789012."""
        with aws_errors("ask STS who the caller is", endpoint=self.target.endpoint_url):
            return str(self.client("sts").get_caller_identity()["Account"])

    def _new_session(self) -> Any:
        boto3 = import_boto3()
        from botocore.exceptions import BotoCoreError

        region = self.target.region
        try:
            session = boto3.session.Session(profile_name=self.target.profile,
                                            region_name=region)
        except BotoCoreError as exc:
            raise translate(exc, "open an AWS session",
                            endpoint=self.target.endpoint_url) from exc
        if session.region_name is None:
            session = boto3.session.Session(profile_name=self.target.profile,
                                            region_name=DEFAULT_REGION)
        return session

    def _new_client(self, session: Any, service: str) -> Any:
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        target = self.target
        config = Config(connect_timeout=target.connect_timeout_s,
                        read_timeout=target.read_timeout_s,
                        retries={"max_attempts": target.max_attempts, "mode": "standard"},
                        max_pool_connections=target.max_pool_connections,
                        # no CRC32 of every request and response body unless the operation
                        # requires one (TLS and S3's own checks stand; moto re-checks each)
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required",
                        # path-style keeps bucket names out of the host name (moto, MinIO)
                        s3={"addressing_style": "path"} if target.endpoint_url else None)
        try:
            return session.client(service, endpoint_url=target.endpoint_url or None,
                                  config=config)
        except ValueError as exc:  # botocore: "Invalid endpoint: ..."
            raise ConfigError(f"the endpoint URL {target.endpoint_url!r} is not valid: {exc}",
                              hint="give a URL like http://127.0.0.1:5000 "
                                   "(--endpoint-url / --storage-endpoint)") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"make the {service} client",
                            endpoint=target.endpoint_url) from exc


def missing_bucket_error(bucket: str, endpoint: str | None = None) -> ConfigError:
    """The one wording of "that bucket is not there" (exit 2), with the fix."""
    where = f" at {endpoint}" if endpoint else ""
    return ConfigError(f"the bucket {bucket!r} does not exist{where}",
                       hint=_DEPLOY_HINT.format(bucket=bucket))


def error_code(exc: BaseException) -> str:
    """A botocore ClientError's code ("NoSuchBucket", "404", ...), else ""."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def translate(exc: BaseException, action: str, *, bucket: str | None = None,
              endpoint: str | None = None,
              fallback: type[MlperfPilotError] = SutError,
              connection_error: type[MlperfPilotError] = ConfigError) -> MlperfPilotError:
    """The tool's error for a botocore/boto3 exception raised while doing ``action``.

    - no credentials, a profile that is not there, no region, refused credentials:
      ConfigError (exit 2) with the fix;
    - a bucket that does not exist: ConfigError naming it and ``serverless deploy``;
    - an endpoint that cannot be reached: ``connection_error`` (ConfigError by default,
      for set-up before a run; the SUT passes SutConnectionError during one);
    - anything else: ``fallback`` (SutError by default) with the service's code and message.
    Never includes credentials (botocore's messages do not carry them).
    """
    from botocore import exceptions as bx

    where = f" at {endpoint}" if endpoint else ""
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return ConfigError(f"cannot {action}: no usable AWS credentials found "
                           f"({type(exc).__name__})", hint=_CREDENTIALS_HINT)
    if isinstance(exc, bx.ProfileNotFound):
        return ConfigError(f"cannot {action}: {exc}",
                           hint="give a profile of ~/.aws/config (--profile) or none")
    if isinstance(exc, bx.NoRegionError):
        return ConfigError(f"cannot {action}: no AWS region is set",
                           hint="pass --region or set AWS_DEFAULT_REGION")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError,
                        bx.ReadTimeoutError, bx.ConnectionClosedError)):
        target = endpoint or "the AWS endpoint"
        hint = ("is the server running there? check --endpoint-url / --storage-endpoint"
                if endpoint else "check the network and --region")
        return connection_error(f"cannot {action}: {target} cannot be reached "
                                f"({type(exc).__name__})", hint=hint)
    if isinstance(exc, bx.ClientError):
        code = error_code(exc)
        detail = exc.response.get("Error", {}).get("Message") or code
        if code in _NO_BUCKET_CODES or (bucket and code in {"404", "NotFound"}
                                        and "bucket" in action):
            name = bucket or exc.response.get("Error", {}).get("BucketName", "?")
            return missing_bucket_error(name, endpoint)
        if code in _BAD_NAME_CODES:
            return ConfigError(f"cannot {action}: {code}: {detail}",
                               hint="S3 bucket names are 3-63 lower-case letters, digits, "
                                    "'.' and '-'; function names letters, digits, '-', '_'")
        if code in _AUTH_CODES or code == "403":
            return ConfigError(f"cannot {action}: the credentials were refused ({code}: "
                               f"{detail})", hint="check the credentials' account and rights "
                               "(the IAM policy needs this action)")
        return fallback(f"cannot {action}: {code}: {detail}",
                        hint=f"AWS said {code}{where}")
    if isinstance(exc, bx.BotoCoreError):
        return fallback(f"cannot {action}: {exc}")
    return fallback(f"cannot {action}: {type(exc).__name__}: {exc}")


@contextmanager
def aws_errors(action: str, *, bucket: str | None = None, endpoint: str | None = None,
               fallback: type[MlperfPilotError] = SutError,
               connection_error: type[MlperfPilotError] = ConfigError) -> Iterator[None]:
    """Translate the botocore exceptions raised in the block (see :func:`translate`);
    the tool's own errors pass through untouched."""
    import_boto3()
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except MlperfPilotError:
        raise
    except (BotoCoreError, ClientError) as exc:
        raise translate(exc, action, bucket=bucket, endpoint=endpoint, fallback=fallback,
                        connection_error=connection_error) from exc


__all__ = ["DEFAULT_REGION", "Aws", "AwsTarget", "aws_errors", "error_code", "import_boto3",
           "missing_bucket_error", "translate"]
