"""API Gateway's own answers in the API's error body: the Gateway Responses ``make package`` merges.

Under API Gateway, a path or method the API does not have never reaches the app: API Gateway
answers itself (``403 Missing Authentication Token``), as it does when it throttles or a request
is too large. ``functions/.chalice/gateway-responses.json`` sets those answers; ``make package``
merges it into the SAM template that ``chalice package`` writes.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from chalicelib import errors

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
RESPONSES = FUNCTIONS / ".chalice" / "gateway-responses.json"
API_GATEWAY_MESSAGE = json.dumps('API Gateway\'s "own" message')
"""What ``$context.error.messageString`` stands for: API Gateway's message, quoted as JSON."""


@pytest.fixture
def gateway_responses() -> dict[str, Any]:
    """The ``GatewayResponses`` of the API in the SAM template, merged as ``make package`` does.

    The template is made by chalice's own generator from the app, less the build step that
    pip-installs the Lambda's dependencies (slow, and offline impossible), which the API's
    resource does not depend on.
    """
    from chalice.awsclient import TypedAWSClient
    from chalice.cli.factory import CLIFactory
    from chalice.deploy import deployer
    from chalice.deploy.appgraph import ApplicationGraphBuilder, DependencyBuilder
    from chalice.deploy.swagger import CFNSwaggerGenerator
    from chalice.package import (
        JSONTemplateSerializer,
        PackageOptions,
        ResourceBuilder,
        SAMTemplateGenerator,
        TemplateDeepMerger,
        TemplateMergePostProcessor,
    )
    from chalice.utils import OSUtils

    factory = CLIFactory(str(FUNCTIONS))
    config = factory.create_config_obj("prod")
    build = deployer.BuildStage(
        steps=[
            deployer.InjectDefaults(),
            deployer.SwaggerBuilder(swagger_generator=CFNSwaggerGenerator()),
        ]
    )
    resources = ResourceBuilder(ApplicationGraphBuilder(), DependencyBuilder(), build)
    options = PackageOptions(TypedAWSClient(factory.create_botocore_session()))
    template = SAMTemplateGenerator(config, options).generate(
        resources.construct_resources(config, "prod")
    )
    merge = TemplateMergePostProcessor(
        osutils=OSUtils(),
        merger=TemplateDeepMerger(),
        template_serializer=JSONTemplateSerializer(),
        merge_template=str(RESPONSES),
    )
    merge.process(template, config, "unused", "prod")
    api = template["Resources"]["RestAPI"]
    assert api["Type"] == "AWS::Serverless::Api"
    assert api["Properties"]["DefinitionBody"]["paths"], "the merge kept chalice's API"
    return dict(api["Properties"]["GatewayResponses"])


def _rendered(response: dict[str, Any]) -> Any:
    """The body API Gateway sends with ``response``'s JSON template."""
    template = response["ResponseTemplates"]["application/json"]
    body = template.replace("$context.error.messageString", API_GATEWAY_MESSAGE)
    assert "$" not in body, f"an unescaped variable in {template}"
    return json.loads(body)


def _statuses_by_code() -> dict[str, set[int]]:
    statuses: dict[str, set[int]] = {}
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, errors.HttpError):
            statuses.setdefault(value.code, set()).add(value.status)
    return statuses


def test_make_package_merges_the_gateway_responses() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "package"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    (command,) = [line for line in dry_run.splitlines() if "chalice package" in line]
    assert command.startswith("cd functions &&")
    merged = re.search(r"--merge-template (\S+)", command)
    assert merged is not None
    assert (FUNCTIONS / merged.group(1)).resolve() == RESPONSES


def test_an_unknown_route_or_method_under_api_gateway_is_a_json_404(
    gateway_responses: dict[str, Any],
) -> None:
    # API Gateway's answer to both, and to either with an Authorization header.
    for kind in ("MISSING_AUTHENTICATION_TOKEN", "INCOMPLETE_SIGNATURE"):
        assert gateway_responses[kind]["StatusCode"] == "404"
        assert _rendered(gateway_responses[kind])["error"]["code"] == "not_found"


def test_every_gateway_answer_is_the_apis_error_body_with_its_codes_status(
    gateway_responses: dict[str, Any],
) -> None:
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "THROTTLED", "REQUEST_TOO_LARGE"} <= set(
        gateway_responses
    )
    statuses = _statuses_by_code()
    for kind, response in gateway_responses.items():
        body = _rendered(response)
        assert set(body) == {"error"}, kind
        assert set(body["error"]) == {"code", "message"}, kind
        assert isinstance(body["error"]["message"], str)
        assert body["error"]["code"] in statuses, f"{kind}: a code the edge does not have"
        if "StatusCode" in response:  # else API Gateway's own status, for the DEFAULT_s
            assert int(response["StatusCode"]) in statuses[body["error"]["code"]], kind


def test_api_gateway_refusing_a_client_is_a_4xx_never_a_5xx(
    gateway_responses: dict[str, Any],
) -> None:
    server_side = {"DEFAULT_5XX", "INTEGRATION_TIMEOUT"}
    for kind, response in gateway_responses.items():
        if kind not in server_side and "StatusCode" in response:
            assert response["StatusCode"].startswith("4"), kind
