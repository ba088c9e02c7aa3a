"""Alerts (issue 19): one per connection and kind of problem, raised by the first change
it stops, counted for the next, closed by itself when the cause clears."""

import datetime

from freezegun import freeze_time

from odoo import fields
from odoo.tests import TransactionCase, tagged

from .test_outbound import OutboundMixin


@tagged("post_install", "-at_install")
class TestAlerts(OutboundMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()

    def open_alerts(self, connection):
        return self.env["billing_sync.alert"].search([("connection_id", "=", connection.id),
                                                      ("state", "=", "open")])

    def test_many_invoices_stopped_by_one_problem_make_one_alert_that_clears_itself(self):
        connection = self.connected("xero")
        unmapped = self.env["account.tax"].create({
            "name": "Unmapped levy 7", "amount": 7, "type_tax_use": "sale"})
        moves = self.env["account.move"]
        for n in range(5):
            moves |= self.taxed_invoice(self.partner(f"Levied {n} Ltd"), unmapped)
        self.run_worker()
        jobs = self.jobs(moves)
        self.assertEqual(set(jobs.mapped("state")), {"blocked"})
        self.assertEqual(set(jobs.mapped("error_class")), {"mapping"})
        alert = self.open_alerts(connection)
        self.assertEqual((len(alert), alert.error_class, alert.count), (1, "mapping", 5))
        self.assertIn("Unmapped levy 7", alert.last_message)
        self.assertIn("mapping", alert.hint.lower())
        # one activity, for an administrator of the connection; none per invoice
        self.assertEqual(alert.activity_id.res_id, connection.id)
        self.assertIn(alert.activity_id.user_id, connection._admin_users())
        self.assertEqual(len(connection.activity_ids.filtered(
            lambda a: a.summary and "stops changes" in a.summary)), 1)
        self.assertFalse(moves.activity_ids)
        # another kind of problem is another alert
        self.xero.faults.next("http500", count=10)
        other = self.invoice(self.partner("Down Ltd"))
        self.jobs(other).attempts = 7
        self.run_worker()
        self.xero.faults.clear()
        self.assertEqual(self.jobs(other).state, "dead")
        self.assertEqual(set(self.open_alerts(connection).mapped("error_class")),
                         {"mapping", "network"})
        # the fix: the tax mapped; the stopped invoices go, and the alert clears itself
        self.map_stopping_tax(connection, unmapped)
        self.run_worker()
        self.assertEqual(set(jobs.mapped("state")), {"done"}, jobs.mapped("last_error"))
        self.assertEqual(alert.state, "closed")
        self.assertTrue(alert.closed_at)
        self.assertFalse(alert.activity_id.exists(), "its activity is marked done")
        # the job given up goes once the ledger is back: its alert clears too
        self.assertEqual(self.open_alerts(connection).error_class, "network")
        self.jobs(other).action_retry()
        self.run_worker()
        self.assertFalse(self.open_alerts(connection))
        # a new problem of the same class later opens a new alert (and tells again)
        again = self.taxed_invoice(self.partner("Levied again Ltd"), self.env[
            "account.tax"].create({"name": "Unmapped levy 9", "amount": 9,
                                   "type_tax_use": "sale"}))
        self.run_worker()
        self.assertEqual(self.jobs(again).state, "blocked")
        fresh = self.open_alerts(connection).filtered(lambda a: a.error_class == "mapping")
        self.assertEqual(fresh.count, 1)
        self.assertNotEqual(fresh, alert)

    def test_a_cancelled_job_clears_its_alert(self):
        connection = self.connected("qbo")
        unmapped = self.env["account.tax"].create({
            "name": "Unmapped levy 8", "amount": 8, "type_tax_use": "sale"})
        move = self.taxed_invoice(self.partner("Cancelled Ltd"), unmapped)
        self.run_worker()
        alert = self.open_alerts(connection)
        self.assertEqual(alert.error_class, "mapping")
        self.jobs(move).filtered(lambda j: j.state == "blocked").action_cancel()
        self.assertEqual(alert.state, "closed")

    def digests(self):
        return self.env["mail.mail"].search([("subject", "like", "Billing Sync:%")])

    def test_later_stops_go_into_one_digest_not_one_mail_each(self):
        connection = self.connected("xero")
        admin = self.env["billing_sync.alert"]._responsible(connection)
        self.assertTrue(admin.partner_id.email)
        unmapped = self.env["account.tax"].create({
            "name": "Digest levy 6", "amount": 6, "type_tax_use": "sale"})
        start = fields.Datetime.now()
        with freeze_time(start):
            self.taxed_invoice(self.partner("First stopped Ltd"), unmapped)
            self.run_worker()
            alert = self.open_alerts(connection)
            self.assertEqual((alert.count, alert.told_count), (1, 1), "told at once")
            self.assertEqual(len(connection.activity_ids), 1)
            Alert = self.env["billing_sync.alert"]
            self.assertEqual(Alert._cron_digest(), 0, "nothing new since the first notice")
            self.assertFalse(self.digests())
        with freeze_time(start + datetime.timedelta(minutes=20)):
            for n in range(4):
                self.taxed_invoice(self.partner(f"Stopped {n} Ltd"), unmapped)
            self.run_worker()
            self.assertEqual(alert.count, 5)
            self.assertEqual(len(connection.activity_ids), 1, "no activity per invoice")
            self.assertFalse(self.digests(), "no mail per invoice")
        with freeze_time(start + datetime.timedelta(hours=1)):
            self.assertEqual(Alert._cron_digest(), 1)
            digest = self.digests()
            self.assertEqual(len(digest), 1)
            self.assertEqual(digest.recipient_ids, admin.partner_id)
            self.assertIn("4 more since the last notice (5 in all", digest.body_html)
            self.assertIn("Digest levy 6", digest.body_html)
            self.assertEqual((alert.told_count, alert.digested_at),
                             (5, start + datetime.timedelta(hours=1)))
            self.assertEqual(Alert._cron_digest(), 0, "told once")
            self.assertEqual(len(self.digests()), 1)

    def test_a_connection_needing_reconnect_alerts_until_connected_again(self):
        connection = self.connected("qbo")
        move = self.invoice(self.partner("Reconnect Ltd"))
        connection._adapter().revoke(connection._cipher().decrypt(
            connection._token_sudo().refresh_token))
        connection._token_sudo().expires_at = datetime.datetime(2000, 1, 1)
        self.run_worker()
        self.run_worker()
        self.assertEqual(connection.state, "needs_reconnect")
        alert = self.open_alerts(connection)
        self.assertEqual((len(alert), alert.error_class), (1, "authentication"))
        self.assertEqual(len(connection.activity_ids), 1, "its activity is the reconnect one")
        self.assertEqual(alert.activity_id, connection.activity_ids)
        self.env["billing_sync.alert"]._cron_watch()
        self.assertEqual(alert.state, "open", "still not connected")
        self.connect(connection)
        self.assertEqual(alert.state, "closed")
        self.run_worker()
        self.assertEqual(self.jobs(move).state, "done")
        self.assertFalse(self.open_alerts(connection))

    def test_a_backlog_older_than_the_setting_alerts_and_clears_when_it_moves(self):
        connection = self.connected("xero")
        self.env["ir.config_parameter"].set_param("billing_sync.backlog_alert_minutes", "60")
        move = self.invoice(self.partner("Waiting long Ltd"))
        Alert = self.env["billing_sync.alert"]
        self.env.flush_all()
        Alert._cron_watch()
        self.assertFalse(self.open_alerts(connection), "not late yet")
        with freeze_time(fields.Datetime.now() + datetime.timedelta(minutes=61)):
            Alert._cron_watch()
            alert = self.open_alerts(connection)
            self.assertEqual((alert.error_class, alert.count), ("backlog", 1))
            self.assertIn("more than 60 minutes", alert.last_message)
            Alert._cron_watch()
            self.assertEqual((len(self.open_alerts(connection)), alert.count), (1, 1),
                             "a standing condition is not counted again")
        self.run_worker()
        self.assertEqual(self.jobs(move).state, "done")
        with freeze_time(fields.Datetime.now() + datetime.timedelta(minutes=62)):
            Alert._cron_watch()
        self.assertEqual(alert.state, "closed")
        self.assertFalse(alert.activity_id.exists())
        self.env["ir.config_parameter"].set_param("billing_sync.backlog_alert_minutes", "0")
        self.invoice(self.partner("Never late Ltd"))
        with freeze_time(fields.Datetime.now() + datetime.timedelta(days=2)):
            Alert._cron_watch()
        self.assertFalse(self.open_alerts(connection), "0: never")
