"""deploy/kubernetes: the Kustomize base, overlays/production, and overlays/production-mtls
(production with the optional components/mtls).

Each is rendered here by `render` (the subset of Kustomize these kustomizations use, which
the first test holds them to: resources, components, namespace, images, strategic-merge
patches by file)
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
from cheroot import wsgi

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
PRODUCTION = KUBERNETES / "overlays" / "production"
PRODUCTION_MTLS = KUBERNETES / "overlays" / "production-mtls"
MTLS = KUBERNETES / "components" / "mtls"
VERSIONS = ("1.31", "1.37")  # the oldest Kubernetes these manifests support, and the newest
SUPPORTED_KEYS = {"apiVersion", "kind", "resources", "components", "namespace", "images", "patches"}
DATA_DIR = "/opt/tessera/var"  # the image's IDP_DATA_DIR
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


def render_resources(directory: Path) -> list[Manifest]:
    kustomization = load(directory / "kustomization.yaml")[0]
    manifests: list[Manifest] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        manifests += render(path) if path.is_dir() else load(path)
    return manifests


def apply_patches(directory: Path, manifests: list[Manifest]) -> list[Manifest]:
    for patch_ref in load(directory / "kustomization.yaml")[0].get("patches", []):
        assert set(patch_ref) == {"path"}, patch_ref
        for patch in load(directory / patch_ref["path"]):
            key = (patch["kind"], patch["metadata"]["name"])
            matches = [
                i for i, m in enumerate(manifests) if (m["kind"], m["metadata"]["name"]) == key
            ]
            assert len(matches) == 1, f"patch {key} matches {len(matches)} objects"
            manifests[matches[0]] = merge(manifests[matches[0]], patch)
    return manifests


def render(directory: Path) -> list[Manifest]:
    kustomization = load(directory / "kustomization.yaml")[0]
    unsupported = set(kustomization) - SUPPORTED_KEYS
    assert not unsupported, f"{directory}: render() does not do {unsupported}"
    manifests = render_resources(directory)
    # A Component adds its resources and patches what is there so far, before the including
    # kustomization's own patches, namespace and images.
    for component in kustomization.get("components", []):
        path = directory / component
        assert load(path / "kustomization.yaml")[0]["kind"] == "Component", path
        assert not {"namespace", "images"} & set(load(path / "kustomization.yaml")[0])
        manifests = apply_patches(path, [*manifests, *render_resources(path)])
    manifests = apply_patches(directory, manifests)
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


VARIANTS = {"base": BASE, "production": PRODUCTION, "production-mtls": PRODUCTION_MTLS}


@pytest.fixture(scope="module", params=list(VARIANTS))
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(VARIANTS[request.param])


def has_mtls(manifests: list[Manifest]) -> bool:
    return "tessera-mtls" in by_kind(manifests, "Deployment")


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


def test_every_file_of_the_mtls_component_is_used_and_valid_on_its_own() -> None:
    files = [path for path in sorted(MTLS.glob("*.yaml")) if path.name != "kustomization.yaml"]
    component = load(MTLS / "kustomization.yaml")[0]
    used = {*component["resources"], *(patch["path"] for patch in component["patches"])}
    assert {path.name for path in files} == used
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
    # The worker and beat keep their counters in a writable data dir (run/) too.
    for name in ("tessera-worker", "tessera-beat"):
        pod = by_kind(rendered, "Deployment")[name]["spec"]["template"]["spec"]
        mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert DATA_DIR in mounts


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
            for writable in ("/tmp", "/var/lib/tessera/journal", DATA_DIR):
                if writable not in mounts:
                    problems.append(f"{named}: {writable} is not a volume (read-only root)")
    return problems


def test_every_pod_is_locked_down(rendered: list[Manifest]) -> None:
    optional = {"tessera-mtls"} if has_mtls(rendered) else set()
    assert {m["metadata"]["name"] for m in rendered if m["kind"] in WORKLOADS} == {
        "tessera-web", "tessera-worker", "tessera-beat", "tessera-migrate", *optional
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
    assert DATA_DIR in mounts  # idp/web.py writes granian's logging config in run/
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


def test_migration_job_runs_migrations_and_creates_the_signing_keys(
    rendered: list[Manifest],
) -> None:
    job = by_kind(rendered, "Job")["tessera-migrate"]["spec"]
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    command = " ".join(job["template"]["spec"]["containers"][0]["command"])
    assert "manage.py migrate --noinput && python manage.py audit_migrate" in command
    # The keys exist before any web pod starts: no pod bootstraps them inside a request
    # (apps/keys/keys.py _bootstrap); --scheduled only creates what is missing.
    assert command.endswith("python manage.py rotate_keys --scheduled")


def test_secrets_are_referenced_never_shipped_and_read_as_files(
    rendered: list[Manifest],
) -> None:
    assert by_kind(rendered, "Secret") == {}
    template = load(BASE / "secret.template.yaml")[0]
    assert set(template["stringData"].values()) == {""}
    assert {"IDP_SECRET_KEY", "IDP_KEY_ENCRYPTION_KEY"} <= set(template["stringData"])
    config = by_kind(rendered, "ConfigMap")["tessera-config"]["data"]
    assert not set(config) & set(template["stringData"])
    # Each key of the Secret is a file, named by NAME_FILE in the ConfigMap (idp/env.py).
    files = {key: config[f"{key}_FILE"] for key in template["stringData"]}
    [directory] = {path.rpartition("/")[0] for path in files.values()}
    assert all(path.rpartition("/")[2] == key for key, path in files.items())
    for manifest in rendered:
        spec = pod_spec(manifest)
        if spec is None:
            continue
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for container in _containers(manifest):
            # Settings from the ConfigMap only: no secret is ever a variable.
            assert container["envFrom"] == [{"configMapRef": {"name": "tessera-config"}}]
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            mount = mounts[directory]
            assert mount.get("readOnly") is True
            secret = volumes[mount["name"]]["secret"]
            assert secret["secretName"] == template["metadata"]["name"]
            assert "items" not in secret  # every key, under its own name
            for variable in container.get("env", []):  # nothing secret inline
                assert set(variable) == {"name", "value"}
                assert variable["name"] not in template["stringData"]
                assert variable["value"].startswith("/") or variable["value"].isdigit()


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
    # Only the web pods accept connections (and the mutual-TLS ones, when there are any).
    ingress_to = [
        policy["spec"]["podSelector"]["matchLabels"]
        for policy in policies.values()
        if "ingress" in policy["spec"]
    ]
    if not has_mtls(rendered):
        assert ingress_to == [web_in["podSelector"]["matchLabels"]]
        return
    mtls_in = policies["tessera-mtls-ingress"]["spec"]
    assert ingress_to == [
        web_in["podSelector"]["matchLabels"],
        mtls_in["podSelector"]["matchLabels"],
    ]
    pod = by_kind(rendered, "Deployment")["tessera-mtls"]["spec"]["template"]
    assert mtls_in["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    port = pod["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert mtls_in["ingress"] == [{"ports": [{"protocol": "TCP", "port": port}]}]


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


def test_mtls_is_optional_and_absent_from_base_and_production() -> None:
    for directory in (BASE, PRODUCTION):
        manifests = render(directory)
        assert not has_mtls(manifests)
        assert "IDP_MTLS_BASE_URL" not in by_kind(manifests, "ConfigMap")["tessera-config"]["data"]
    production = {(m["kind"], m["metadata"]["name"]) for m in render(PRODUCTION)}
    with_mtls = {(m["kind"], m["metadata"]["name"]) for m in render(PRODUCTION_MTLS)}
    assert with_mtls - production == {
        ("Deployment", "tessera-mtls"), ("Service", "tessera-mtls"),
        ("PodDisruptionBudget", "tessera-mtls"), ("NetworkPolicy", "tessera-mtls-ingress"),
    }  # fmt: skip
    assert production <= with_mtls


def test_the_mtls_listener_terminates_tls_itself_behind_a_tcp_load_balancer() -> None:
    manifests = render(PRODUCTION_MTLS)
    deployment = by_kind(manifests, "Deployment")["tessera-mtls"]
    assert deployment["metadata"]["namespace"] == "tessera"
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["command"] == ["python", "-m", "idp.mtls"]
    assert container["image"] == "registry.example.com/tessera:0.1.0"
    env = {variable["name"]: variable["value"] for variable in container["env"]}
    assert container["ports"] == [{"name": "mtls", "containerPort": int(env["IDP_MTLS_PORT"])}]
    # The server pair from a kubernetes.io/tls Secret (tls.crt, tls.key), mounted read-only.
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for variable, key in (("IDP_TLS_CERT_FILE", "tls.crt"), ("IDP_TLS_KEY_FILE", "tls.key")):
        directory, _, name = env[variable].rpartition("/")
        assert name == key
        assert mounts[directory]["readOnly"] is True
        assert volumes[mounts[directory]["name"]]["secret"]["secretName"] == "tessera-mtls-tls"
    # Probes over TLS (the listener speaks nothing else), with the Host ALLOWED_HOSTS accepts.
    for kind, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                       ("readinessProbe", "/readyz")):  # fmt: skip
        probe = _probe(container, kind)
        assert (probe["path"], probe["port"], probe["scheme"]) == (path, "mtls", "HTTPS")
        assert probe["httpHeaders"] == [{"name": "Host", "value": "localhost"}]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # The pause, then cheroot's wait for its requests (idp/mtls.py keeps its default), fit.
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pause >= 5
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert grace >= pause + wsgi.Server.shutdown_timeout + 5
    # Reached by TCP with the client's own address (rate limits key on it), on the TLS port.
    service = by_kind(manifests, "Service")["tessera-mtls"]["spec"]
    assert service["type"] == "LoadBalancer"
    assert service["externalTrafficPolicy"] == "Local"
    assert service["ports"] == [{"name": "https", "port": 443, "targetPort": "mtls"}]
    assert service["selector"].items() <= pod["metadata"]["labels"].items()
    pdb = by_kind(manifests, "PodDisruptionBudget")["tessera-mtls"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pdb["maxUnavailable"] < deployment["spec"]["replicas"]
    # Every pod (the web pods too) knows the origin discovery publishes as the aliases.
    config = by_kind(manifests, "ConfigMap")["tessera-config"]["data"]
    assert config["IDP_MTLS_BASE_URL"].startswith("https://")
    assert config["IDP_ISSUER"] == "https://idp.example.com"  # production's patch kept
    # IDP_MTLS_PORT needs the pair: only the mutual-TLS pods have either.
    assert "IDP_MTLS_PORT" not in config
