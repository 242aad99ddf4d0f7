"""PLACEHOLDER: being written now; replace this whole module."""
from django.http import HttpResponse

def agent_list(request, *args, **kwargs):
    return HttpResponse(status=501)


def agent_create(request, *args, **kwargs):
    return HttpResponse(status=501)


def agent_detail(request, *args, **kwargs):
    return HttpResponse(status=501)


def agent_edit(request, *args, **kwargs):
    return HttpResponse(status=501)


def agent_duplicate(request, *args, **kwargs):
    return HttpResponse(status=501)


def agent_delete(request, *args, **kwargs):
    return HttpResponse(status=501)


def agent_version(request, *args, **kwargs):
    return HttpResponse(status=501)


def widget_key_create(request, *args, **kwargs):
    return HttpResponse(status=501)


def widget_key_revoke(request, *args, **kwargs):
    return HttpResponse(status=501)


