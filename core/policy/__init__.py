"""Kyverno ``verifyImages`` policies: typed models (:mod:`sigward.policy.models`), the loader with Kyverno's
validation (:mod:`sigward.policy.loader`: ``load_policies``, ``load_policy_text``, ``policy_paths_from_env``,
``PolicySet``) and the table of what sigward implements (:mod:`sigward.policy.capabilities`).

Nothing is imported here, so importing the models does not pull in the YAML and key-parsing dependencies.
"""
