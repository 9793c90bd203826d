"""GET / for people: the upload page for a browser (Accept: text/html), JSON for everyone
else; the page's own files only, under a Content-Security-Policy of 'self'."""

import re

import pytest
from flask.testing import FlaskClient

from app import create_app
from app.config import AppConfig
from app.routes.page import PAGE
from tests.support.installed_image_model import install_tiny_classifier

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    return install_tiny_classifier(tmp_path_factory.mktemp("page-models"))


@pytest.fixture
def page_client(tiny) -> FlaskClient:
    return create_app(AppConfig(tiny["directory"].parents[1], "colours", "1")).test_client()


def test_a_browser_gets_the_upload_page_with_the_models_identity(page_client, tiny):
    response = page_client.get("/", headers={"Accept": BROWSER_ACCEPT})

    html = response.text
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert 'type="file"' in html and 'accept="image/*"' in html
    assert "colours" in html and tiny["digest"] in html
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert "Accept" in response.headers["Vary"]


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "text/html;q=0.5, */*"])
def test_json_clients_keep_the_service_info_at_the_root(page_client, accept):
    response = page_client.get("/", headers={"Accept": accept} if accept else {})

    assert response.is_json and response.json["model"]["name"] == "colours"


@pytest.mark.parametrize(
    ("path", "mimetype"), [("/page/page.js", "text/javascript"), ("/page/page.css", "text/css")]
)
def test_the_pages_script_and_style_sheet_are_served_under_the_same_policy(
    page_client, path, mimetype
):
    response = page_client.get(path)

    assert response.status_code == 200 and response.mimetype == mimetype
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert page_client.get("/page/other.js").status_code == 404


def test_the_page_uses_no_external_url_no_inline_script_or_style_and_no_framework():
    for name in ("index.html", "page.js", "page.css"):
        text = (PAGE / name).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9]", text, re.IGNORECASE), name
    html = (PAGE / "index.html").read_text()
    assert "<style" not in html and " style=" not in html and "on" + "click" not in html
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/page/page.js" defer>']


def test_a_model_not_loaded_shows_why_on_the_page(tmp_path):
    client = create_app(AppConfig(tmp_path, "colours", "1")).test_client()

    html = client.get("/", headers={"Accept": "text/html"}).text

    assert "not ready" in html and "no manifest.json" in html
