"""PLACEHOLDER: being written now; replace this whole module."""
from django.http import HttpResponse

def member_list(request, *args, **kwargs):
    return HttpResponse(status=501)


def member_invite(request, *args, **kwargs):
    return HttpResponse(status=501)


def member_role(request, *args, **kwargs):
    return HttpResponse(status=501)


def member_remove(request, *args, **kwargs):
    return HttpResponse(status=501)


def invitation_revoke(request, *args, **kwargs):
    return HttpResponse(status=501)


def invitation_accept(request, *args, **kwargs):
    return HttpResponse(status=501)


