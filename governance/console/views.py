"""The web console for governance officers and auditors. Pages call the same selectors as the API."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from governance.accounts.access import Principal
from governance.accounts.selectors import project_list


@login_required
def root(request):
    return redirect("console:home")


@login_required
def home(request):
    principal = Principal(request.user)
    projects = [(p, sorted(principal.roles(p))) for p in project_list(principal=principal)]
    return render(request, "console/home.html", {"projects": projects})
