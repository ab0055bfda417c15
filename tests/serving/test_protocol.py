"""Content negotiation of the SageMaker protocol (Accept with q-values)."""

import pytest


@pytest.mark.parametrize("accept,expected", [
    ("application/jsonlines;q=0.5, application/json", "application/json"),
    ("application/json;q=0.1, application/jsonlines", "application/jsonlines"),
    ("application/jsonlines;q=0, */*", "application/json"),
    ("text/html, application/jsonlines;q=0.9", "application/jsonlines"),
    ("*/*;q=0.8, application/jsonlines", "application/jsonlines"),
    ("application/jsonlines, application/json", "application/jsonlines"),
])
def test_accept_q_values_choose_the_format(accept, expected):
    from skobject2vec.serving.protocol import response_media_type

    assert response_media_type(accept) == expected


def test_accept_refusing_every_format_is_406():
    from skobject2vec.serving.protocol import PayloadError, response_media_type

    with pytest.raises(PayloadError, match="cannot answer with Accept"):
        response_media_type("application/json;q=0, application/jsonlines;q=0")
