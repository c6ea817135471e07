"""A lab's ``[store] url`` picks the store: a folder (relative to the lab) or S3; the S3
settings are config keys, credentials are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from breedlab.config import load_config
from breedlab.errors import ConfigError, InvalidRequest
from breedlab.registry.blobs import FileBlobStore
from breedlab.registry.s3 import S3BlobStore
from breedlab.registry.stores import open_blob_store


def test_a_folder_url_is_a_file_store_relative_to_the_lab(tmp_path: Path) -> None:
    store = open_blob_store("objects", tmp_path)
    assert isinstance(store, FileBlobStore) and store.root == tmp_path / "objects"


def test_an_s3_url_is_an_s3_store_with_its_prefix() -> None:
    store = open_blob_store("s3://bucket/some/prefix", Path("/"), endpoint="http://127.0.0.1:1")
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == ("bucket", "some/prefix")


@pytest.mark.parametrize("url", ["gs://bucket/x", "s3:///nobucket"])
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequest):
        open_blob_store(url, Path("/"))


def test_scale_out_keys_are_read_and_secrets_are_not_keys(tmp_path: Path) -> None:
    (tmp_path / "breedlab.toml").write_text(
        '[store]\nurl = "s3://b/p"\nendpoint = "http://127.0.0.1:9000"\nregion = "eu-west-1"\n'
        '[executor]\nkind = "ray"\nray_address = "10.0.0.1:6379"\n'
    )
    config = load_config(tmp_path)
    assert (config.store_url, config.store_endpoint, config.store_region) == (
        "s3://b/p",
        "http://127.0.0.1:9000",
        "eu-west-1",
    )
    assert (config.executor, config.ray_address) == ("ray", "10.0.0.1:6379")
    (tmp_path / "breedlab.toml").write_text('[store]\naws_secret_access_key = "x"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'store\.aws_secret_access_key'"):
        load_config(tmp_path)
