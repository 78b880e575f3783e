"""`ingestd sandbox`'s fault options offer what the switches take, with the same defaults."""

from __future__ import annotations

import pytest

from ingestd.cli.main import main
from ingestd.cli.main import parser as _parser
from ingestd.sandbox.faults import CHOICES, Faults

# option -> (its dest on the command line, the switch it sets)
OPTIONS = {
    "--error-body": ("error_body", "error_body"),
    "--rate-limit-body": ("rate_limit_body", "rate_limit_body"),
    "--project-id-key": ("project_id_key", "project_hashed_id_key"),
    "--media-project-id-key": ("media_project_id_key", "media_project_hashed_id_key"),
    "--no-video-limit-as": ("no_video_limit_as", "no_video_limit"),
    "--upload-unknown-project": ("upload_unknown_project", "upload_unknown_project"),
    "--customizations-merge": ("customizations_merge", "customizations_merge"),
}


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_choice_options_match_the_switches(option: str) -> None:
    dest, switch = OPTIONS[option]
    defaults = _parser().parse_args(["sandbox"])
    assert getattr(defaults, dest) == getattr(Faults(), switch)
    for value in CHOICES[switch]:
        assert getattr(_parser().parse_args(["sandbox", option, value]), dest) == value
    with pytest.raises(SystemExit):
        _parser().parse_args(["sandbox", option, "no-such-value"])


def test_endpoint_lists_are_comma_separated_and_checked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = _parser().parse_args(["sandbox", "--forbidden", "captions, swap,", "--swap-fails"])
    assert args.forbidden == ("captions", "swap")
    assert args.swap_fails is True
    assert main(["sandbox", "--port", "0", "--forbidden", "everything"]) == 2
    assert "forbidden" in capsys.readouterr().err
