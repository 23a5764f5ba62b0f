"""The admin API's threat endpoints (issue 16): what the console's threats page and person page
show and do (apps.console.threats), through the same services. Risk assessments (threat.assessed
events, filtered by score, action and person), the people blocked now, blocking and unblocking
a person (operators: OperatorWrites, as every act on a person), and the threat rules
(administrators: AdministratorWrites, as everything that changes how the system decides)."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import MfaRequiredBy, User
from apps.accounts.services import user_block, user_unblock
from apps.audit.selectors import event_page
from apps.audit.store import PAGE_SIZE, PAGE_SIZE_MAX
from apps.console.api.serializers import StrictBoolean
from apps.console.api.views import FIELD_ERRORS, _call, _input, _valid
from apps.console.lookups import operator_viewed, user_or_404
from apps.console.permissions import AdministratorWrites, OperatorWrites, StaffRead
from apps.console.threats import assessments_of
from apps.console.threats_forms import BLOCK_MINUTES_MAX, AssessmentApiFilterForm
from apps.core.risk import Action
from apps.threat import services as rule_services
from apps.threat.models import RuleAction, RuleSeverity, ThreatRule
from apps.threat.selectors import BLOCKED_LIMIT, blocked_count, blocked_people, rule_list
from apps.threat.selectors import rule_detail as _rule_detail

# --- Serializers (this module's alone) ---


class ReasonSerializer(serializers.Serializer[Any]):
    signal = serializers.CharField(help_text="A signal of apps/threat/signals.py.")
    points = serializers.IntegerField(help_text="What it added to the score.")
    detail = serializers.CharField(help_text="For people, e.g. a distance and a time.")


class AssessmentSerializer(serializers.Serializer[Any]):
    """A threat.assessed event as the console shows it."""

    id = serializers.UUIDField(help_text="The event's id.")
    occurred_at = serializers.DateTimeField(source="at")
    user_id = serializers.CharField(help_text="The account assessed; empty for an unknown one.")
    email = serializers.CharField(help_text="Its address, or the address the attempt named.")
    ip_address = serializers.CharField(source="ip", allow_null=True)
    country = serializers.CharField()
    city = serializers.CharField()
    asn = serializers.IntegerField(allow_null=True)
    score = serializers.IntegerField(allow_null=True, help_text="0-100; null if not recorded.")
    action = serializers.CharField(help_text=f"One of {', '.join(Action.ORDER)}.")
    reasons = ReasonSerializer(many=True)
    rules = serializers.ListField(
        child=serializers.CharField(), help_text="The rules that matched."
    )
    session_id = serializers.CharField()
    kind = serializers.CharField(help_text="sign-in, or the session activity judged.")
    success = serializers.BooleanField(
        allow_null=True, help_text="A sign-in's first factor was proven; null if not recorded."
    )


class AssessmentPageSerializer(serializers.Serializer[Any]):
    results = AssessmentSerializer(many=True)
    next = serializers.CharField(
        allow_null=True, help_text="Pass as `after` for older ones; null on the last page."
    )


class BlockStateSerializer(serializers.ModelSerializer[User]):
    blocked = serializers.SerializerMethodField(help_text="Blocked now (a block not yet over).")

    class Meta:
        model = User
        fields = (
            "id", "email", "blocked", "blocked_at", "blocked_until", "blocked_by",
            "blocked_reason",
        )  # fmt: skip

    def get_blocked(self, user: User) -> bool:
        return user.is_blocked()


class BlockedListSerializer(serializers.Serializer[Any]):
    results = BlockStateSerializer(many=True)
    total = serializers.IntegerField(help_text="How many people are blocked now.")


class UserBlockSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(
        max_length=200, help_text="Why; kept on the account and in user.blocked."
    )
    minutes = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        max_value=BLOCK_MINUTES_MAX,
        help_text="How long; absent or null: until an operator unblocks them.",
    )


class UnblockSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=200, help_text="Why."
    )


class BlockChangedSerializer(serializers.Serializer[Any]):
    user = BlockStateSerializer()
    changed = serializers.BooleanField(
        help_text="False when nothing changed (a longer block held already; not blocked)."
    )


class RuleSerializer(serializers.ModelSerializer[ThreatRule]):
    class Meta:
        model = ThreatRule
        fields = (
            "id", "name", "description", "condition", "action", "severity", "enabled",
            "builtin", "block_minutes", "created_at", "updated_at", "updated_by",
        )  # fmt: skip


class RuleListSerializer(serializers.Serializer[Any]):
    results = RuleSerializer(many=True)


class RuleInputSerializer(serializers.Serializer[Any]):
    """A rule as administrators write it; the condition is compiled when it is saved
    (apps.threat.rules: an error names the line and column)."""

    name = serializers.CharField(max_length=64, help_text="A slug, unique: letters, digits, -, _.")
    description = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default=""
    )
    condition = serializers.CharField(
        max_length=2000,
        help_text="An expression over the signals and `score`, e.g. "
        "`new_country and new_device and score >= 60`.",
    )
    action = serializers.ChoiceField(choices=RuleAction.choices)
    severity = serializers.ChoiceField(choices=RuleSeverity.choices)
    enabled = StrictBoolean(required=False, default=True)
    block_minutes = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        max_value=BLOCK_MINUTES_MAX,
        help_text="For a block: how long; null: until an operator unblocks the person.",
    )


# --- Assessments ---


@extend_schema(
    operation_id="threats_assessments_list",
    summary=f"Risk assessments (threat.assessed events), newest first, {PAGE_SIZE} a page "
    "unless `limit` says",
    parameters=[
        OpenApiParameter("min_score", int, description="Only a score at least this (0-100)."),
        OpenApiParameter("action", str, enum=list(Action.ORDER), description="Only this action."),
        OpenApiParameter("user", str, description="An account's email address or user id."),
        OpenApiParameter("after", str, description="The `next` value of the previous page."),
        OpenApiParameter("limit", int, description=f"1 to {PAGE_SIZE_MAX}; {PAGE_SIZE} if absent."),
    ],
    responses={200: AssessmentPageSerializer, 400: FIELD_ERRORS},
)
@api_view(["GET"])
@permission_classes([StaffRead])
def assessments(request: Request) -> Response:
    form = _valid(AssessmentApiFilterForm(request.query_params))
    if form.filters.user_id:
        operator_viewed(request, form.person or form.filters.user_id)
    page = event_page(
        filters=form.filters, after=form.cleaned_data["after"], limit=form.cleaned_data["limit"]
    )
    body = {
        "results": assessments_of(page.events),
        "next": str(page.next_cursor) if page.next_cursor else None,
    }
    return Response(AssessmentPageSerializer(body).data)


# --- Blocked people ---


class _BlockedQuery(serializers.Serializer[Any]):
    limit = serializers.IntegerField(
        required=False, default=BLOCKED_LIMIT, min_value=1, max_value=PAGE_SIZE_MAX
    )
    offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=10**6)


@extend_schema(
    operation_id="threats_blocked_list",
    summary="People blocked now, the newest block first",
    parameters=[
        OpenApiParameter("limit", int, description=f"1 to {PAGE_SIZE_MAX}; {BLOCKED_LIMIT}."),
        OpenApiParameter("offset", int, description="How many to skip (0 if absent)."),
    ],
    responses={200: BlockedListSerializer, 400: FIELD_ERRORS},
)
@api_view(["GET"])
@permission_classes([StaffRead])
def blocked(request: Request) -> Response:
    query = _input(_BlockedQuery(data=request.query_params))
    now = timezone.now()
    people = blocked_people(now=now, limit=query["limit"], offset=query["offset"])
    body = {"results": people, "total": blocked_count(now=now)}
    return Response(BlockedListSerializer(body).data)


@extend_schema(
    operation_id="users_block",
    summary="Block a user: every sign-in refused until unblocked or for `minutes`; recorded "
    "as user.blocked with the caller as actor",
    description="Their live sessions stay (POST …/revoke-all ends them). A person blocked "
    "already keeps the longer of the two blocks.",
    request=UserBlockSerializer,
    responses={200: BlockChangedSerializer, 400: FIELD_ERRORS},
)
@api_view(["POST"])
@permission_classes([OperatorWrites])
def user_block_api(request: Request, user_id: uuid.UUID) -> Response:
    user = user_or_404(user_id)
    given = _input(UserBlockSerializer(data=request.data))
    minutes = given["minutes"]
    until = timezone.now() + datetime.timedelta(minutes=minutes) if minutes else None
    changed = _call(
        user_block,
        user=user,
        actor_id=request.user.pk,
        source=MfaRequiredBy.OPERATOR,
        reason=given["reason"],
        until=until,
    )
    return Response({"user": BlockStateSerializer(user).data, "changed": changed})


@extend_schema(
    operation_id="users_unblock",
    summary="Lift a user's block; recorded as user.unblocked with the caller as actor",
    request=UnblockSerializer,
    responses={200: BlockChangedSerializer, 400: FIELD_ERRORS},
)
@api_view(["POST"])
@permission_classes([OperatorWrites])
def user_unblock_api(request: Request, user_id: uuid.UUID) -> Response:
    user = user_or_404(user_id)
    given = _input(UnblockSerializer(data=request.data))
    changed = user_unblock(user=user, actor_id=request.user.pk, reason=given["reason"])
    return Response({"user": BlockStateSerializer(user).data, "changed": changed})


# --- Rules ---


@extend_schema(
    methods=["GET"],
    operation_id="threats_rules_list",
    summary="Every threat rule, enabled or not, by name",
    responses=RuleListSerializer,
)
@extend_schema(
    methods=["POST"],
    operation_id="threats_rules_create",
    summary="Create a threat rule; recorded as threat.rule_changed with the caller as actor",
    description="Every process applies it from the next sign-in after the commit. A condition "
    "that does not compile is a 400 under `condition`, naming the line and column.",
    request=RuleInputSerializer,
    responses={201: RuleSerializer, 400: FIELD_ERRORS},
)
@api_view(["GET", "POST"])
@permission_classes([AdministratorWrites])
def rules(request: Request) -> Response:
    if request.method == "POST":
        given = _input(RuleInputSerializer(data=request.data))
        created = _call(rule_services.rule_create, actor_id=request.user.pk, **given)
        return Response(RuleSerializer(created).data, status=201)
    return Response({"results": RuleSerializer(rule_list(), many=True).data})


def _rule_or_404(rule_id: uuid.UUID) -> ThreatRule:
    found = _rule_detail(rule_id=rule_id)
    if found is None:
        raise Http404("No threat rule has this id.")
    return found


@extend_schema(methods=["GET"], operation_id="threats_rules_retrieve", responses=RuleSerializer)
@extend_schema(
    methods=["PATCH"],
    operation_id="threats_rules_update",
    summary="Change a threat rule (any of its fields; enabled: false disables it); recorded "
    "as threat.rule_changed with before and after",
    request=RuleInputSerializer(partial=True),
    responses={200: RuleSerializer, 400: FIELD_ERRORS},
)
@extend_schema(
    methods=["DELETE"],
    operation_id="threats_rules_destroy",
    summary="Delete a threat rule an administrator made (a shipped one: 400, disable it)",
    responses={204: None, 400: FIELD_ERRORS},
)
@api_view(["GET", "PATCH", "DELETE"])
@permission_classes([AdministratorWrites])
def rule(request: Request, rule_id: uuid.UUID) -> Response:
    found = _rule_or_404(rule_id)
    if request.method == "PATCH":
        given = RuleInputSerializer(data=request.data, partial=True)
        if isinstance(request.data, dict):  # a field no one may change is refused, not ignored
            fixed = sorted(set(request.data) - set(given.fields))
            if fixed:
                raise ValidationError({key: ["This field cannot be changed."] for key in fixed})
        changes = _input(given)
        _call(rule_services.rule_update, rule=found, actor_id=request.user.pk, **changes)
    elif request.method == "DELETE":
        _call(rule_services.rule_delete, rule=found, actor_id=request.user.pk)
        return Response(status=204)
    return Response(RuleSerializer(found).data)
