"""IAM enforced in the harness: every principal acts with its own credentials, every call is authorized.

Public API (stable; other parts of the harness build on it):

- `harness.iam.credentials`:
  - `credentials_for(context, role_arn, session_name, service=None) -> Credentials`: temporary
    credentials of a role, from moto's STS (`sts:AssumeRole` as the AWS service `service` does it, e.g.
    "sagemaker.amazonaws.com"; the role's trust policy must name that service, else TrustPolicyError).
  - `Credentials` (`access_key_id`, `secret_access_key`, `session_token`, `principal_arn`;
    `.as_env()` for a process, `.as_boto3()` for boto3), `ADMIN_CREDENTIALS` (the harness's own key).
- `context.iam.session(role_arn, session_name, service) -> Credentials`: the same, kept per context
  (one AssumeRole per role, session and service), the admin's while enforcement is off or when the role
  does not exist in moto's IAM (unit tests name made-up roles). Lambda workers and Step Functions Tasks
  get theirs this way; so should every service principal harness code acts for.
- `harness.iam.principals`: `resolve(access_key_id, session_token) -> Principal` (`arn`, `role_arn`,
  `policies`, `is_admin`), `role_session(role_arn, session_name) -> Principal` (no STS: for a service's
  own calls that never cross the HTTP boundary), `role_policies(role_arn)`; `UnknownAccessKey`,
  `InvalidSessionToken`.
- `harness.iam.actions`: `Call(service, operation, params, region, account, method, path)` and
  `requests_for(call) -> list[Request]`: the IAM action, resource ARN(s) and condition keys AWS
  authorizes a call on, `iam:PassRole` included; `harness.iam.s3_actions.s3_requests(...)` for S3.
- `harness.iam.enforcement`: `IamEnforcement` (one per HarnessContext, `context.iam`): `enabled` /
  `set_enabled(bool)`, `authorize(principal, requests) -> Denial | None` (records the denial),
  `denials()`; `Denial.message` is AWS's "User: ARN is not authorized to perform: ACTION on resource:
  ARN because no identity-based policy allows the ACTION action".
  For a call that does not go through moto's HTTP boundary (harness code acting for a service on moto's
  backends directly), authorize it yourself:
  `context.iam.authorize(role_session(role_arn, session), [Request(action, arn)])` (None: allowed).
- `harness.iam.managed_rules`: the EventBridge rules Step Functions manages for `.sync` Tasks.
- `harness.iam.errors`: each protocol's error document (JSON, rest-json, query, S3).

Where it is enforced: `harness/seams/iam.py` wraps moto's dispatch (`BaseResponse.call_action` and S3's
authorization hook) and says why that, not moto's own access control. The switch: `HarnessContext(iam=)`
/ `context.iam.set_enabled(False)`, `LocalAwsOptions.iam`, `mlops run --no-iam`, a scenario's
`settings.iam: false`.

The principals: the admin ("testing": deploying stacks, putting data, the harness's checks) keeps full
rights; each Lambda function runs with its execution role (harness/lambda_runtime); each Step
Functions Task with the state machine's role (harness/seams/stepfunctions.py).
"""
