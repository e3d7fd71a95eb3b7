"""Provider metadata, found by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "headwater",
        "name": "Headwater",
        "description": "Dataset versioning and provenance: versioned steps, Assets, lineage.",
        "versions": ["0.1.0"],
        "integrations": [{
            "integration-name": "Headwater",
            "external-doc-url": "https://github.com/headwater-data/headwater",
            "tags": ["software"],
        }],
        "operators": [{
            "integration-name": "Headwater",
            "python-modules": [
                "headwater_airflow.operators.versioned",
                "headwater_airflow.operators.steps",
            ],
        }],
        "hooks": [{
            "integration-name": "Headwater",
            "python-modules": ["headwater_airflow.hooks.headwater"],
        }],
        "connection-types": [{
            "hook-class-name": "headwater_airflow.hooks.headwater.HeadwaterHook",
            "connection-type": "headwater",
        }],
        "task-decorators": [{
            "name": "headwater",
            "class-name": "headwater_airflow.decorators.versioned.versioned_task",
        }],
        "asset-uris": [{
            "schemes": ["headwater"],
            "handler": "headwater_airflow.assets.sanitize_uri",
            "factory": "headwater_airflow.assets.create_asset",
            "to_openlineage_converter": "headwater_airflow.assets.convert_asset_to_openlineage",
        }],
        "plugins": [{
            "name": "headwater",
            "plugin-class": "headwater_airflow.plugins.headwater_plugin.HeadwaterPlugin",
        }],
    }
