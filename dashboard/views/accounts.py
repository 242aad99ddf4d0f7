"""PLACEHOLDER: being written now; replace this whole module."""
from django.http import HttpResponse

from django.contrib.auth.views import LoginView, LogoutView  # noqa: F401

def home(request, *args, **kwargs):
    return HttpResponse(status=501)


def signup(request, *args, **kwargs):
    return HttpResponse(status=501)


