"""PLACEHOLDER: being written now; replace this whole module."""
from django.http import HttpResponse

def credential_list(request, *args, **kwargs):
    return HttpResponse(status=501)


def credential_create(request, *args, **kwargs):
    return HttpResponse(status=501)


def credential_edit(request, *args, **kwargs):
    return HttpResponse(status=501)


def credential_delete(request, *args, **kwargs):
    return HttpResponse(status=501)


