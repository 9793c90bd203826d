"""Bad values fail `helm template` with a message that names the value."""

import pytest

from tests.chart.conftest import HELM_V3, render_error

BAD_VALUES = [
    ({"model": {"name": "Digits/v1"}}, "/model/name"),
    ({"model": {"name": ""}}, "/model/name"),
    ({"model": {"version": "1/../2"}}, "/model/version"),
    ({"model": {"version": "1..2"}}, "/model/version"),
    ({"model": {"version": None}}, "version"),
    ({"model": {"digest": "abc123"}}, "/model/digest"),
    ({"model": {"digest": "A" * 64}}, "/model/digest"),
    ({"image": {"app": {"repository": ""}}}, "/image/app/repository"),
    ({"image": {"loader": {"digest": "sha256:short"}}}, "/image/loader/digest"),
    ({"image": {"app": {"tag": "has space"}}}, "/image/app/tag"),
    ({"storage": {"container": "Models_1"}}, "/storage/container"),
    ({"storage": {"accountUrl": "blob.core.windows.net"}}, "/storage/accountUrl"),
    ({"auth": {"mode": "password"}}, "/auth/mode"),
    ({"auth": {"workloadIdentity": {"clientId": "not-a-guid"}}}, "/auth/workloadIdentity/clientId"),
    ({"auth": {"workloadIdentity": {"clientId": ""}}}, "auth.workloadIdentity.clientId"),
    ({"storage": {"accountUrl": ""}}, "storage.accountUrl"),
    ({"auth": {"mode": "none"}, "storage": {"accountUrl": ""}}, "storage.accountUrl"),
    ({"auth": {"mode": "existingSecret"}}, "auth.existingSecret.name"),
    ({"service": {"type": "Ingress"}}, "/service/type"),
    ({"service": {"externalTrafficPolicy": "Nearest"}}, "/service/externalTrafficPolicy"),
    ({"app": {"port": 80}}, "/app/port"),
    ({"app": {"workers": 0}}, "/app/workers"),
    ({"replicaCount": "two"}, "/replicaCount"),
    ({"modle": {"version": "2"}}, "modle"),
    ({"model": {"verison": "2"}}, "verison"),
]


@pytest.mark.parametrize(("values", "named"), BAD_VALUES, ids=[n for _, n in BAD_VALUES])
def test_bad_values_fail_rendering_naming_the_value(values, named):
    assert named in render_error(values)


def test_helm_3_rejects_the_same_bad_values_naming_them_its_own_way():
    for values, named in BAD_VALUES:
        message = render_error(values, helm=HELM_V3)
        dotted = named.strip("/").replace("/", ".")  # helm 3 writes model.name for /model/name
        assert named in message or dotted in message, message
