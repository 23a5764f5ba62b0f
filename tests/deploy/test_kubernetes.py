"""deploy/kubernetes: the Kustomize base and overlays/production.

Each is rendered here by `render` (the subset of Kustomize these kustomizations use, which
the first test holds them to: resources, namespace, images, strategic-merge patches by file)
and every object is validated with kubernetes-validate against the Kubernetes JSON schemas it
bundles (strict: an unknown field is an error), for the oldest and newest versions named
below. Then the policies the issue asks of every pod are asserted on the rendered objects.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
PRODUCTION = KUBERNETES / "overlays" / "production"
VERSIONS = ("1.31", "1.37")  # the oldest Kubernetes these manifests support, and the newest
SUPPORTED_KEYS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
CLUSTER_SCOPED = {"Namespace"}
WORKLOADS = {"Deployment", "Job"}

Manifest = dict[str, Any]


def load(path: Path) -> list[Manifest]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def merge(target: Any, patch: Any) -> Any:
    """Strategic merge as Kustomize does it for what these patches touch: maps merge, lists of
    named maps (containers, env, ports, volumes) merge by name, other lists are replaced."""
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            merged[key] = merge(target[key], value) if key in target else value
        return merged
    if (
        isinstance(target, list)
        and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in [*target, *patch])
    ):
        by_name = {item["name"]: item for item in target}
        for item in patch:
            by_name[item["name"]] = merge(by_name.get(item["name"], {}), item)
        return list(by_name.values())
    return patch


def _containers(manifest: Manifest) -> list[Manifest]:
    spec = pod_spec(manifest)
    return [] if spec is None else [*spec.get("initContainers", []), *spec["containers"]]


def pod_spec(manifest: Manifest) -> Manifest | None:
    if manifest["kind"] not in WORKLOADS:
        return None
    spec: Manifest = manifest["spec"]["template"]["spec"]
    return spec


def render(directory: Path) -> list[Manifest]:
    kustomization = load(directory / "kustomization.yaml")[0]
    unsupported = set(kustomization) - SUPPORTED_KEYS
    assert not unsupported, f"{directory}: render() does not do {unsupported}"
    manifests: list[Manifest] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        manifests += render(path) if path.is_dir() else load(path)
    for patch_ref in kustomization.get("patches", []):
        assert set(patch_ref) == {"path"}, patch_ref
        for patch in load(directory / patch_ref["path"]):
            key = (patch["kind"], patch["metadata"]["name"])
            matches = [
                i for i, m in enumerate(manifests) if (m["kind"], m["metadata"]["name"]) == key
            ]
            assert len(matches) == 1, f"patch {key} matches {len(matches)} objects"
            manifests[matches[0]] = merge(manifests[matches[0]], patch)
    if "namespace" in kustomization:
        for manifest in manifests:
            if manifest["kind"] not in CLUSTER_SCOPED:
                manifest["metadata"]["namespace"] = kustomization["namespace"]
    for image in kustomization.get("images", []):
        for manifest in manifests:
            for container in _containers(manifest):
                if re.split(r"[:@]", container["image"])[0] == image["name"]:
                    container["image"] = f"{image['newName']}:{image['newTag']}"
    return manifests


@pytest.fixture(scope="module", params=["base", "production"])
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(BASE if request.param == "base" else PRODUCTION)


def by_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


# Custom resources have no schema in kubernetes-validate: their shape is checked here.
SERVICE_MONITOR = "monitoring.coreos.com/v1"


def service_monitor_errors(manifest: Manifest) -> list[str]:
    """The ServiceMonitor fields Tessera uses, strictly (an unknown field is an error, as
    kubernetes-validate's strict mode does), after the Prometheus Operator's CRD."""
    where = f"ServiceMonitor/{manifest.get('metadata', {}).get('name')}"
    errors = []

    def only(value: object, allowed: set[str], path: str) -> None:
        if not isinstance(value, dict):
            errors.append(f"{where}: {path} is not a map")
            return
        errors.extend(f"{where}: unknown field {path}.{key}" for key in set(value) - allowed)

    only(manifest, {"apiVersion", "kind", "metadata", "spec"}, "")
    only(manifest.get("metadata"), {"name", "namespace", "labels"}, "metadata")
    spec = manifest.get("spec", {})
    only(spec, {"selector", "endpoints", "namespaceSelector", "jobLabel"}, "spec")
    only(spec.get("selector"), {"matchLabels"}, "spec.selector")
    endpoints = spec.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        return [*errors, f"{where}: spec.endpoints must be a non-empty list"]
    duration = re.compile(r"^(0|([0-9]+(ms|s|m|h))+)$")  # the CRD's Duration pattern
    for index, endpoint in enumerate(endpoints):
        path = f"spec.endpoints[{index}]"
        fields = {"port", "path", "scheme", "interval", "scrapeTimeout", "authorization"}
        only(endpoint, fields, path)
        if not isinstance(endpoint.get("port"), str):
            errors.append(f"{where}: {path}.port must name a Service port")
        if endpoint.get("scheme", "http") not in ("http", "https"):
            errors.append(f"{where}: {path}.scheme must be http or https")
        if not str(endpoint.get("path", "/")).startswith("/"):
            errors.append(f"{where}: {path}.path must start with /")
        for key in ("interval", "scrapeTimeout"):
            if key in endpoint and not duration.match(str(endpoint[key])):
                errors.append(f"{where}: {path}.{key} is not a duration")
        authorization = endpoint.get("authorization")
        if authorization is not None:
            only(authorization, {"type", "credentials"}, f"{path}.authorization")
            only(authorization.get("credentials"), {"name", "key"}, f"{path}.credentials")
    return errors


def schema_errors(manifest: Manifest) -> list[str]:
    if manifest["apiVersion"] == SERVICE_MONITOR:
        return service_monitor_errors(manifest)
    errors = []
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = f"{manifest['kind']}/{manifest['metadata']['name']}"
            errors.append(f"{version} {where}: {error.message}")
    return errors


def test_every_manifest_is_valid_for_kubernetes(rendered: list[Manifest]) -> None:
    assert len(rendered) >= 12
    assert [error for manifest in rendered for error in schema_errors(manifest)] == []


def test_every_base_file_and_the_secret_template_are_valid_on_their_own() -> None:
    files = [path for path in sorted(BASE.glob("*.yaml")) if path.name != "kustomization.yaml"]
    listed = set(load(BASE / "kustomization.yaml")[0]["resources"])
    # Every file is applied, except the template of the Secret (never applied: it has no values).
    assert {path.name for path in files} - listed == {"secret.template.yaml"}
    manifests = [manifest for path in files for manifest in load(path)]
    assert [error for manifest in manifests for error in schema_errors(manifest)] == []


def test_the_service_monitor_check_is_strict_too(rendered: list[Manifest]) -> None:
    monitor = copy.deepcopy(by_kind(rendered, "ServiceMonitor")["tessera-web"])
    assert service_monitor_errors(monitor) == []
    monitor["spec"]["endpoints"][0]["bearerTokenFile"] = "/token"  # removed from the CRD
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    assert service_monitor_errors(monitor) == [
        "ServiceMonitor/tessera-web: unknown field spec.endpoints[0].bearerTokenFile",
        "ServiceMonitor/tessera-web: spec.endpoints[0].interval is not a duration",
    ]


def test_prometheus_scrapes_web_pods_with_the_token_they_read(rendered: list[Manifest]) -> None:
    # Issue 19: /metrics for authorized scrapers only (apps/core/metrics_view.py).
    monitor = by_kind(rendered, "ServiceMonitor")["tessera-web"]["spec"]
    service = by_kind(rendered, "Service")["tessera-web"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    [endpoint] = monitor["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    credentials = endpoint["authorization"]["credentials"]
    assert endpoint["authorization"]["type"] == "Bearer"
    template = {s["metadata"]["name"]: s for s in load(BASE / "secret.template.yaml")}
    assert set(template[credentials["name"]]["stringData"]) == {credentials["key"]}
    web = by_kind(rendered, "Deployment")["tessera-web"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in web["volumes"]}
    [container] = web["containers"]
    mounted = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    token_file = {e["name"]: e["value"] for e in container["env"]}["IDP_METRICS_TOKEN_FILE"]
    directory, _, key = token_file.rpartition("/")
    assert mounted[directory]["secret"]["secretName"] == credentials["name"]
    assert key == credentials["key"]
    # The worker and beat keep their counters in a writable run folder too.
    for name in ("tessera-worker", "tessera-beat"):
        pod = by_kind(rendered, "Deployment")[name]["spec"]["template"]["spec"]
        mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert "/opt/tessera/var/run" in mounts


def test_the_validator_is_strict_about_unknown_fields(rendered: list[Manifest]) -> None:
    web = copy.deepcopy(by_kind(rendered, "Deployment")["tessera-web"])
    context = web["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    context["readOnlyRootFileSystem"] = True  # a typo of readOnlyRootFilesystem
    assert len(schema_errors(web)) == len(VERSIONS)


def policy_violations(manifests: list[Manifest]) -> list[str]:
    """What the issue asks of every Tessera pod (and the restricted Pod Security Standard):
    non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp, no privilege
    escalation, no service-account token, requests and limits for CPU and memory."""
    problems = []
    for manifest in manifests:
        spec = pod_spec(manifest)
        if spec is None:
            continue
        where = f"{manifest['kind']}/{manifest['metadata']['name']}"
        pod = spec.get("securityContext", {})
        if pod.get("runAsNonRoot") is not True or pod.get("runAsUser", 0) == 0:
            problems.append(f"{where}: pod not runAsNonRoot with a non-zero runAsUser")
        if pod.get("seccompProfile") != {"type": "RuntimeDefault"}:
            problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: a service-account token is mounted")
        for container in _containers(manifest):
            named = f"{where} container {container['name']}"
            context = container.get("securityContext", {})
            wanted = {
                "runAsNonRoot": True,
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            }
            for key, value in wanted.items():
                if context.get(key) != value:
                    problems.append(f"{named}: securityContext.{key} is not {value}")
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(kind, {}):
                        problems.append(f"{named}: no {kind}.{resource}")
            mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
            for writable in ("/tmp", "/var/lib/tessera/journal"):
                if writable not in mounts:
                    problems.append(f"{named}: {writable} is not a volume (read-only root)")
    return problems


def test_every_pod_is_locked_down(rendered: list[Manifest]) -> None:
    assert {m["metadata"]["name"] for m in rendered if m["kind"] in WORKLOADS} == {
        "tessera-web", "tessera-worker", "tessera-beat", "tessera-migrate"
    }  # fmt: skip
    assert policy_violations(rendered) == []


def test_the_policy_check_names_what_is_missing(rendered: list[Manifest]) -> None:
    broken = copy.deepcopy(rendered)
    worker = by_kind(broken, "Deployment")["tessera-worker"]
    container = worker["spec"]["template"]["spec"]["containers"][0]
    del container["securityContext"]["readOnlyRootFilesystem"]
    del container["resources"]["limits"]["memory"]
    container["securityContext"]["capabilities"] = {"drop": ["NET_RAW"]}
    named = "Deployment/tessera-worker container worker"
    assert sorted(policy_violations(broken)) == [
        f"{named}: no limits.memory",
        f"{named}: securityContext.capabilities is not {{'drop': ['ALL']}}",
        f"{named}: securityContext.readOnlyRootFilesystem is not True",
    ]


def _probe(container: Manifest, kind: str) -> Manifest:
    probe: Manifest = container[kind]["httpGet"]
    return probe


def test_web_probes_healthz_for_liveness_and_readyz_for_readiness(
    rendered: list[Manifest],
) -> None:
    web = by_kind(rendered, "Deployment")["tessera-web"]["spec"]["template"]["spec"]
    container = web["containers"][0]
    assert container["command"] == ["python", "-m", "idp.web"]
    assert _probe(container, "livenessProbe")["path"] == "/healthz"
    assert _probe(container, "startupProbe")["path"] == "/healthz"
    assert _probe(container, "readinessProbe")["path"] == "/readyz"
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = _probe(container, kind)
        assert probe["port"] == "http"
        # The kubelet would send the pod IP as Host, which ALLOWED_HOSTS refuses (400).
        assert probe["httpHeaders"] == [{"name": "Host", "value": "localhost"}]
    assert {port["name"]: port["containerPort"] for port in container["ports"]} == {"http": 8000}
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert "/opt/tessera/var/run" in mounts  # idp/web.py writes granian's logging config
    worker = by_kind(rendered, "Deployment")["tessera-worker"]["spec"]["template"]["spec"]
    ping = worker["containers"][0]["livenessProbe"]["exec"]["command"]
    assert "celery -A idp inspect ping" in ping[-1]
    assert worker["containers"][0]["command"][:4] == ["celery", "-A", "idp", "worker"]


def test_exactly_one_beat_replaced_not_rolled(rendered: list[Manifest]) -> None:
    beat = by_kind(rendered, "Deployment")["tessera-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert beat["spec"]["template"]["spec"]["containers"][0]["command"][:4] == [
        "celery", "-A", "idp", "beat"
    ]  # fmt: skip
    autoscalers = by_kind(rendered, "HorizontalPodAutoscaler").values()
    scaled = {autoscaler["spec"]["scaleTargetRef"]["name"] for autoscaler in autoscalers}
    assert scaled == {"tessera-web"}


def test_web_scales_and_survives_disruptions(rendered: list[Manifest]) -> None:
    web = by_kind(rendered, "Deployment")["tessera-web"]
    labels = web["spec"]["template"]["metadata"]["labels"]
    assert "replicas" not in web["spec"]  # the HPA owns the count
    hpa = by_kind(rendered, "HorizontalPodAutoscaler")["tessera-web"]["spec"]
    assert hpa["minReplicas"] >= 2
    assert hpa["maxReplicas"] > hpa["minReplicas"]
    pdb = by_kind(rendered, "PodDisruptionBudget")["tessera-web"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["maxUnavailable"] < hpa["minReplicas"]
    service = by_kind(rendered, "Service")["tessera-web"]["spec"]
    assert service["selector"].items() <= labels.items()
    assert service["ports"][0]["targetPort"] == "http"


def test_migration_job_runs_django_and_clickhouse_migrations(rendered: list[Manifest]) -> None:
    job = by_kind(rendered, "Job")["tessera-migrate"]["spec"]
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    command = " ".join(job["template"]["spec"]["containers"][0]["command"])
    assert "manage.py migrate --noinput && python manage.py audit_migrate" in command


def test_secrets_are_referenced_never_shipped(rendered: list[Manifest]) -> None:
    assert by_kind(rendered, "Secret") == {}
    template = load(BASE / "secret.template.yaml")[0]
    assert set(template["stringData"].values()) == {""}
    assert {"IDP_SECRET_KEY", "IDP_KEY_ENCRYPTION_KEY"} <= set(template["stringData"])
    for manifest in rendered:
        for container in _containers(manifest):
            sources = container["envFrom"]
            assert {"secretRef": {"name": template["metadata"]["name"]}} in sources
            for variable in container.get("env", []):  # nothing secret inline: paths only
                assert set(variable) == {"name", "value"}
                assert variable["name"] not in template["stringData"]
                assert variable["value"].startswith("/")
    config = by_kind(rendered, "ConfigMap")["tessera-config"]["data"]
    assert not set(config) & set(template["stringData"])


def test_network_policies_deny_by_default_and_open_web_to_the_ingress(
    rendered: list[Manifest],
) -> None:
    policies = by_kind(rendered, "NetworkPolicy")
    deny = policies["tessera-default-deny"]["spec"]
    assert deny["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "tessera"}
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny
    assert "egress" not in deny
    web_in = policies["tessera-web-ingress"]["spec"]
    assert web_in["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "web"
    assert web_in["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8000}]
    # and Prometheus's namespace, for /metrics (which asks its bearer token as well)
    scraper = web_in["ingress"][1]
    assert scraper["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    assert scraper["ports"] == [{"protocol": "TCP", "port": 8000}]
    # Only the web pods accept connections.
    ingress_to = [
        policy["spec"]["podSelector"]["matchLabels"]
        for policy in policies.values()
        if "ingress" in policy["spec"]
    ]
    assert ingress_to == [web_in["podSelector"]["matchLabels"]]


def test_production_overlay_sets_namespace_image_and_ingress() -> None:
    manifests = render(PRODUCTION)
    namespace = by_kind(manifests, "Namespace")["tessera"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {m["metadata"].get("namespace") for m in manifests if m["kind"] != "Namespace"} == {
        "tessera"
    }
    images = {c["image"] for m in manifests for c in _containers(m)}
    assert images == {"registry.example.com/tessera:0.1.0"}
    base_images = {c["image"] for m in render(BASE) for c in _containers(m)}
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    assert base_images == {compose["x-tessera"]["image"].split(":-")[1].rstrip("}")}
    ingress = by_kind(manifests, "Ingress")["tessera"]["spec"]
    backend = ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "tessera-web", "port": {"name": "http"}}
    assert ingress["tls"][0]["hosts"] == [ingress["rules"][0]["host"]]
    issuer = by_kind(manifests, "ConfigMap")["tessera-config"]["data"]["IDP_ISSUER"]
    assert issuer == f"https://{ingress['rules'][0]['host']}"
    web = by_kind(manifests, "Deployment")["tessera-web"]["spec"]["template"]["spec"]
    assert web["containers"][0]["resources"]["limits"]["cpu"] == "4"  # the patch merged
    assert web["containers"][0]["livenessProbe"]  # and kept the base's fields
