"""The web console for governance officers and auditors. Pages call the same selectors as the API."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from governance import selectors
from governance.access import Principal


@login_required
def root(request):
    return redirect("console:home")


@login_required
def home(request):
    principal = Principal(request.user)
    projects = [(p, sorted(principal.roles(p))) for p in selectors.project_list(principal=principal)]
    return render(request, "console/home.html", {"projects": projects})
