"""Access map: 2,000 IAM principals x 5,000 database users, indexed vs pair by pair.

Generates an authorization document (users, roles, groups, managed policies,
literal ARNs, team prefixes, ${aws:username}, wildcards with a Deny,
conditions, permissions boundaries) and the database side, then times
``build_access_map`` (no database: the catalog side is one ``list_users``
round trip, timed by bench_list_users.py).  The naive comparison evaluates
each (principal, user) pair with ``evaluate_policy`` (``pair_outcome``); a
full naive run takes minutes, so a random sample of pairs is timed and
extrapolated (the output says so).  SimulatePrincipalPolicy is not called:
the figure is how many calls asking IAM would take.  The goal is under a
second for the map.

    .venv/bin/python bench/bench_access.py [--principals 2000] [--users 5000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

from rdsiamkit.access import DatabaseTarget, RoleFacts, build_access_map, read_authorization
from rdsiamkit.access._engine import pair_outcome
from rdsiamkit.authmode import AuthMode

ACCOUNT = "123456789012"
RID = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY2"
DB = DatabaseTarget(partition="aws", region="us-east-1", account_id=ACCOUNT, resource_id=RID)
PREFIX = DB.arn_prefix
TEAMS = 100
# SimulatePrincipalPolicy returns at most 1,000 results per page.
SIMULATE_PAGE = 1000


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(resources: list[str], **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": "rds-db:connect", "Resource": resources, **extra}


def db_users(count: int) -> list[str]:
    per_team = max(1, int(count * 0.8) // TEAMS)
    names = [f"team{t}_{j}" for t in range(TEAMS) for j in range(per_team)]
    return names + [f"svc_{i}" for i in range(count - len(names))]


def managed(name: str, document: dict[str, Any]) -> dict[str, Any]:
    return {
        "PolicyName": name,
        "Arn": f"arn:aws:iam::{ACCOUNT}:policy/{name}",
        "DefaultVersionId": "v1",
        "PolicyVersionList": [{"VersionId": "v1", "IsDefaultVersion": True, "Document": document}],
    }


def document(principals: int, users: list[str], rng: random.Random) -> dict[str, Any]:
    """A generated GetAccountAuthorizationDetails document."""
    shared = [
        managed(f"shared{i}", policy(allow([PREFIX + u for u in rng.sample(users, 20)])))
        for i in range(20)
    ]
    boundary = managed("boundary", policy(allow([PREFIX + "team*", PREFIX + "svc_1*"])))
    groups = [
        {
            "GroupName": f"g{i}",
            "GroupPolicyList": [],
            "AttachedManagedPolicies": [{"PolicyArn": shared[i % 20]["Arn"], "PolicyName": "x"}],
        }
        for i in range(50)
    ]
    mfa = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    iam_users, roles = [], []
    for i in range(principals):
        kind = rng.random()
        extra: dict[str, Any] = {}
        if kind < 0.6:
            named = rng.sample(users, rng.randint(1, 5)) + ([f"gone_{i}"] if i % 10 == 0 else [])
            doc = policy(allow([PREFIX + u for u in named]))
        elif kind < 0.75:
            doc = policy(allow([PREFIX + f"team{rng.randrange(TEAMS)}_*"]))
        elif kind < 0.85:
            doc = policy(allow([PREFIX + "svc_0"]))
            extra["GroupList"] = [f"g{rng.randrange(50)}"]
        elif kind < 0.90:
            doc = policy(allow([PREFIX + "${aws:username}"]))
        elif kind < 0.93:
            doc = policy(
                {"Effect": "Allow", "Action": "rds-db:*", "Resource": PREFIX + "*"},
                {"Effect": "Deny", "Action": "rds-db:connect", "Resource": PREFIX + "svc_9*"},
            )
        elif kind < 0.97:
            doc = policy(allow([PREFIX + f"team{rng.randrange(TEAMS)}_*"], Condition=mfa))
        else:
            doc = policy(allow([PREFIX + "*"]))
            extra["PermissionsBoundary"] = {"PermissionsBoundaryArn": boundary["Arn"]}
        inline = [{"PolicyName": f"p{i}", "PolicyDocument": doc}]
        arn = f"arn:aws:iam::{ACCOUNT}"
        if i % 10 < 7 or "GroupList" in extra:
            name = f"svc_{i}" if kind < 0.9 and kind >= 0.85 else f"user{i}"
            iam_users.append(
                {
                    "UserName": name,
                    "UserId": f"AIDA{i}",
                    "Arn": f"{arn}:user/{name}",
                    "UserPolicyList": inline,
                    **extra,
                }
            )
        else:
            roles.append(
                {
                    "RoleName": f"role{i}",
                    "RoleId": f"AROA{i}",
                    "Arn": f"{arn}:role/role{i}",
                    "RolePolicyList": inline,
                    **extra,
                }
            )
    return {
        "UserDetailList": iam_users,
        "GroupDetailList": groups,
        "RoleDetailList": roles,
        "Policies": [*shared, boundary],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--principals", type=int, default=2000)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sample", type=int, default=20_000, help="naive pairs timed")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    rng = random.Random(16)
    names = db_users(args.users)
    roles = [
        RoleFacts(n, AuthMode.IAM if rng.random() < 0.85 else AuthMode.PASSWORD, True)
        for n in names
    ]
    doc = json.dumps(document(args.principals, names, rng))

    reads, builds = [], []
    for _ in range(args.runs):
        started = time.perf_counter()
        authorization = read_authorization(doc)
        parsed = time.perf_counter()
        amap = build_access_map(roles, authorization, DB)
        done = time.perf_counter()
        reads.append(parsed - started)
        builds.append(done - parsed)
    started = time.perf_counter()
    exported = amap.to_json()
    export = time.perf_counter() - started

    pairs = len(authorization.principals) * len(names)
    sample = [(rng.choice(authorization.principals), rng.choice(names)) for _ in range(args.sample)]
    started = time.perf_counter()
    for entry, name in sample:
        pair_outcome(entry, PREFIX + name, ACCOUNT)
    per_pair = (time.perf_counter() - started) / len(sample)
    pages = len(authorization.principals) * -(-len(names) // SIMULATE_PAGE)
    figures = {
        "principals": len(authorization.principals),
        "db_users": len(names),
        "pairs": pairs,
        "read_document_s": statistics.median(reads),
        "build_map_s": statistics.median(builds),
        "build_map_min_s": min(builds),
        "to_json_s": export,
        "json_bytes": len(exported),
        "naive_per_pair_us": per_pair * 1e6,
        "naive_sampled_pairs": len(sample),
        "naive_all_pairs_s_extrapolated": per_pair * pairs,
        "simulate_calls_one_per_pair": pairs,
        "simulate_pages_batched_per_principal": pages,
        "wildcards": len(amap.wildcards),
        "dangling": len(amap.dangling),
        "unreachable": len(amap.unreachable),
    }
    total = figures["read_document_s"] + figures["build_map_s"]
    print(
        f"{figures['principals']:,} principals x {figures['db_users']:,} db users "
        f"({pairs:,} pairs)\n"
        f"  read document     {figures['read_document_s'] * 1000:8.1f} ms (median of {args.runs})\n"
        f"  build map         {figures['build_map_s'] * 1000:8.1f} ms (median; min "
        f"{figures['build_map_min_s'] * 1000:.1f} ms)\n"
        f"  together          {total * 1000:8.1f} ms  -> goal < 1,000 ms: "
        f"{'met' if total < 1 else 'MISSED'}\n"
        f"  to_json           {export * 1000:8.1f} ms ({len(exported) / 1e6:.1f} MB)\n"
        f"  naive all pairs   {per_pair * 1e6:8.1f} us/pair, timed on {len(sample):,} random "
        f"pairs, extrapolated: {per_pair * pairs:,.0f} s ({per_pair * pairs / total:,.0f}x)\n"
        f"  SimulatePrincipalPolicy: {pairs:,} calls one per pair, or at least {pages:,} "
        f"paginated calls batching {SIMULATE_PAGE} ARNs per principal\n"
        f"  findings: {figures['wildcards']} wildcard grants, {figures['dangling']} dangling, "
        f"{figures['unreachable']} unreachable"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=2)


if __name__ == "__main__":
    main()
