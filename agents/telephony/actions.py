"""What Koe asks a carrier to do with a live call: hand the caller to a person.

Synchronous (database and carrier HTTP): transports run it on ``foundation.call_threads``.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from agents.telephony import telnyx, twilio
from agents.telephony.models import Carrier, PhoneCall
from agents.telephony.twilio_rest import CarrierError, update_call

logger = logging.getLogger("koe.telephony")


def transfer(call_id: int, target: str) -> bool:
    """Move the caller of call ``call_id`` to ``target`` (a cold transfer): the carrier
    leaves the media stream and dials. False when it cannot be done."""
    phone_call = (
        PhoneCall.objects.select_related("phone_number__carrier_account")
        .filter(call_id=call_id)
        .first()
    )
    if phone_call is None or phone_call.phone_number is None:
        return False
    account = phone_call.phone_number.carrier_account
    if phone_call.carrier == Carrier.TELNYX:
        # Telnyx dials the target and bridges the call there; its reason for a refusal is
        # logged by ``send``.
        command = telnyx.transfer(account.auth_token, phone_call.carrier_call_id, target)
        if not telnyx.send(command):
            logger.warning("transfer refused call=%s", phone_call.public_id)
            return False
    elif phone_call.carrier == Carrier.TWILIO:
        try:
            update_call(account, phone_call.carrier_call_id, {"Twiml": twilio.dial(target)})
        except CarrierError as error:
            logger.warning("transfer refused call=%s: %s", phone_call.public_id, error.message)
            return False
    else:
        logger.warning("transfer not supported for %s calls", phone_call.carrier)
        return False
    PhoneCall.objects.filter(pk=phone_call.pk).update(
        transfer_to=target, transferred_at=timezone.now()
    )
    return True
