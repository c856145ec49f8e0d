"""Who may do what, decided on the server from what the CRM says (issue #12).

Identity comes only from what the CRM signed: HubSpot's v3-signed card fetch (`userEmail`,
carried on in our view token's `user`) and Pipedrive's panel JWT (`userId`, likewise). The
rest is asked of the CRM through the installation's own token and cached briefly in Redis, so
a page load costs at most a few calls every minute or so. No answer is never a yes (fail
closed), and every refusal is audited.

- Settings page: the installing user, or (Pipedrive) a Pipedrive admin.
- Money and actions (InstallationSettings.money_visibility / action_permission): `everyone`,
  `owners_and_admins` (the record's CRM owner, CRM admins, the installing user) or `admins`.
- Admins: Pipedrive `GET /api/v1/users/{id}` `is_admin` (scope users:read). HubSpot tells a
  user's super-admin flag only through the user provisioning API (`GET /settings/v3/users/{id}`
  `superAdmin`, scope `settings.users.read`; developers.hubspot.com/docs/api-reference/latest/
  account/settings/user-provisioning), a scope Paydeck does not ask for: in HubSpot only the
  installing user counts as an admin.
- Pipedrive record visibility (the panel's record id is not signed): see may_view_record.

`viewer` who is looking (as the CRM signed and says) and how their pages are formatted,
`rules` who may see money, act, open a Pipedrive record and change the settings, and
`crm_answers` what the CRM said about users and records, cached in Redis.
"""
