"""The three-value comparison and the ownership policy (services/ownership.py), alone."""

from odoo.addons.billing_sync.services.ownership import decide

BASE = {"name": "Acme", "email": "ap@acme.test", "phone": "1", "tax_id": None,
        "street": "1 High St", "street2": None, "city": "Leeds", "zip": "LS1",
        "state": None, "country_code": "GB"}
LAST = {}


def changed(values, **more):
    return {**values, **more}


def test_only_the_ledger_moved_the_ledger_wins_without_a_conflict():
    (decision,) = decide(BASE, BASE, changed(BASE, email="new@acme.test"), LAST, False)
    assert (decision.group, decision.winner, decision.conflict) == ("email", "ledger", False)
    assert decision.ledger == {"email": "new@acme.test"}


def test_only_odoo_moved_odoo_wins():
    (decision,) = decide(BASE, changed(BASE, phone="2"), BASE, LAST, True)
    assert (decision.winner, decision.conflict) == ("odoo", False)


def test_both_moved_the_policy_decides_and_it_is_a_conflict():
    odoo, ledger = changed(BASE, city="York"), changed(BASE, city="Hull")
    assert [(d.group, d.winner, d.conflict) for d in decide(BASE, odoo, ledger, LAST, True)] \
        == [("address", "ledger", True)]
    assert decide(BASE, odoo, ledger, LAST, False)[0].winner == "odoo"
    assert decide(BASE, odoo, ledger, {"address": "odoo"}, True)[0].winner == "odoo"
    assert decide(BASE, odoo, ledger, {"address": "ledger"}, False)[0].winner == "ledger"


def test_an_owner_keeps_its_value_even_when_only_the_other_side_moved():
    ledger = changed(BASE, email="new@acme.test")
    (decision,) = decide(BASE, BASE, ledger, {"email": "odoo"}, True)
    assert (decision.winner, decision.conflict) == ("odoo", False)


def test_the_same_value_on_both_sides_is_no_change_and_spaces_do_not_count():
    assert decide(BASE, changed(BASE, city="York"), changed(BASE, city=" York "), LAST,
                  True) == []
    assert decide(BASE, changed(BASE, street2=""), BASE, LAST, True) == []


def test_without_a_base_the_later_side_wins_and_nobody_calls_it_a_conflict():
    (decision,) = decide(None, BASE, changed(BASE, phone="9"), LAST, True)
    assert (decision.winner, decision.conflict) == ("ledger", False)
    assert decide(None, BASE, changed(BASE, phone="9"), LAST, False)[0].winner == "odoo"


def test_what_the_ledger_cannot_read_is_left_out():
    ledger = {k: v for k, v in changed(BASE, tax_id="GB1").items() if k != "tax_id"}
    assert decide(BASE, changed(BASE, tax_id="GB2"), ledger, LAST, True) == []
