"""The landing page's description for machines: schema.org `Dataset` JSON-LD and BibTeX."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .templates import WEB

__all__ = ["CONTENT_TYPES", "bibtex", "dataset_ld"]

CONTENT_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
_SPDX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*$")  # "CC-BY-4.0", "ODbL-1.0"
# Characters BibTeX (and LaTeX after it) would read as markup, written as plain text.
_BIBTEX = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "_": r"\_",
    "^": r"\^{}",
    "~": r"\~{}",
}


def license_url(license: str) -> str:
    """An http(s) URL as is; an SPDX identifier as its SPDX page; other text as written."""
    if WEB.match(license):
        return license
    return f"https://spdx.org/licenses/{license}.html" if _SPDX.match(license) else license


def dataset_ld(
    dataset: dict[str, str], first: str, last: str, formats: Iterable[str]
) -> dict[str, Any]:
    """schema.org `Dataset` (https://schema.org/Dataset): what search engines and data
    catalogs read. One distribution per published format, at its folder of the layout;
    URLs are absolute under the catalog's public URL, else relative to the landing page."""
    base = f"{dataset['base']}/" if dataset["base"] else ""
    document: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Dataset",
        "name": dataset["title"],
        "description": dataset["description"] or dataset["title"],
        "isAccessibleForFree": True,
    }
    if base:
        document["url"] = base
    if dataset["license"]:
        document["license"] = license_url(dataset["license"])
    if dataset["citation"]:
        document["citation"] = dataset["citation"]
    if dataset["generated_at"]:
        document["dateModified"] = dataset["generated_at"]
    if first and last:
        document["temporalCoverage"] = f"{first}/{last}"
    document["distribution"] = [
        {
            "@type": "DataDownload",
            "name": f"{fmt} files, one per site, table and day",
            "encodingFormat": CONTENT_TYPES.get(fmt, fmt),
            "contentUrl": f"{base}data/{fmt}/",
        }
        for fmt in sorted(formats)
    ] + [
        {
            "@type": "DataDownload",
            "name": "Frictionless data package (every file, its schema and checksum)",
            "encodingFormat": "application/json",
            "contentUrl": f"{base}datapackage.json",
        }
    ]
    return document


def bibtex(dataset: dict[str, str], first: str, last: str) -> str:
    """A BibTeX `@misc` entry for the dataset, its key made from the title and year."""
    year = dataset["generated_at"][:4]
    words = re.findall(r"[a-z0-9]+", dataset["title"].lower())[:4]
    key = "_".join([*words, year]) or "dataset"
    note = [dataset["citation"]] if dataset["citation"] else []
    if first and last:
        note.append(f"Days {first} to {last}")
    if dataset["license"]:
        note.append(f"License: {dataset['license']}")
    fields = [("title", "{" + _escape(dataset["title"]) + "}")]
    if year.isdigit():
        fields.append(("year", year))
    if dataset["base"]:
        fields += [
            ("url", dataset["base"] + "/"),
            ("howpublished", r"\url{" + dataset["base"] + "/}"),
        ]
    if note:
        fields.append(("note", _escape(". ".join(note))))
    lines = [f"  {name:<12} = {{{value}}}," for name, value in fields]
    return "@misc{" + key + ",\n" + "\n".join(lines) + "\n}"


def _escape(text: str) -> str:
    return "".join(_BIBTEX.get(char, char) for char in " ".join(text.split()))
