from django.core.management.base import BaseCommand

from omnidesk.workspace.demo import demo_seed


class Command(BaseCommand):
    help = "Create the demo organisation: a manager, two agents, and one demo-<kind> account per installed plugin."

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        people, accounts = demo_seed()
        self.stdout.write(self.style.SUCCESS("Demo organisation ready."))
        self.stdout.write("Logins (http://127.0.0.1:8000/accounts/login/):")
        for p in people:
            self.stdout.write(f"  {p.username:8} / {p.password}   {p.role}, groups: {', '.join(p.groups)}")
        self.stdout.write("Channel accounts: " + ", ".join(f"{a.slug} ({a.kind})" for a in accounts))
