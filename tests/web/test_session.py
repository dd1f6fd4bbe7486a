from roost.web.session import session_secret


def test_new_keys_end_every_session():
    one = session_secret({"AK": "secret-1"})
    assert one == session_secret({"AK": "secret-1"})
    assert one != session_secret({"AK": "secret-2"}) and one != session_secret({"AK2": "secret-1"})
    assert "secret-1" not in one
