"""factory_boy factories for Koe's models."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from agents.models import Agent, WidgetKey
from calls.models import CallSession
from tenancy.models import Membership, ProviderCredential, Tenant
from tenancy.roles import Role
from tools.models import ToolDefinition

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}@example.com")
    email = factory.SelfAttribute("username")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Tenant {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Role.OWNER


class ToolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ToolDefinition

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"lookup_order_{n}")
    description = "Look up an order by its number."
    parameters = factory.LazyFunction(
        lambda: {
            "type": "object",
            "properties": {"order_number": {"type": "string"}},
            "required": ["order_number"],
        }
    )
    kind = "webhook"
    webhook_url = "https://hooks.example.com/orders"


class AgentFactory(factory.django.DjangoModelFactory):
    """Creates the agent through the versioning service, like the dashboard and API do."""

    class Meta:
        model = Agent

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Agent {n}")
    instructions = "You are a helpful receptionist."

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        from agents.versions import save_agent

        tools = kwargs.pop("tools", None)
        agent = model_class(*args, **kwargs)
        save_agent(agent, tools)
        return agent


class CallFactory(factory.django.DjangoModelFactory):
    """A live call of an agent's current version, as the broker opens one."""

    class Meta:
        model = CallSession

    agent = factory.SubFactory(AgentFactory)
    tenant = factory.LazyAttribute(lambda call: call.agent.tenant)
    agent_version = factory.LazyAttribute(lambda call: call.agent.current_version)
    agent_name = factory.LazyAttribute(lambda call: call.agent.name)
    version_number = factory.LazyAttribute(lambda call: call.agent.current_version.number)
    channel = "api"
    provider = factory.LazyAttribute(lambda call: call.agent.provider)
    model = factory.LazyAttribute(lambda call: call.agent.model)


class CredentialFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProviderCredential

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"OpenAI key {n}")
    provider = "openai"
    api_key = "sk-proj-test-1234567890abcdef"


class WidgetKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WidgetKey

    agent = factory.SubFactory(AgentFactory)
    allowed_origins = factory.LazyFunction(lambda: ["https://shop.example"])
