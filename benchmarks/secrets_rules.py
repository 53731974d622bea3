"""The corpus of benchmarks/secrets_corpus.py: gitleaks' default rules (config/gitleaks.toml, 222 rules) as
value shapes, and the look-alikes that must survive.

Shapes are written `{charset:n}` (charsets in secrets_corpus.CHARSETS) and `{uuid}`, restating each rule's
secret group; they are this project's own samples of those formats, not gitleaks' code.
"""

from __future__ import annotations

# Tokens that carry their own prefix: measured in every named context and where no name says what they are.
# A spec is a shape, or (form, shape) where the form shows where the value sits (`{v}`).
TOKENS: dict[str, list] = {
    "1password-secret-key": ["A3-{UP:6}-{UP:11}-{UP:5}-{UP:5}-{UP:5}", "A3-{UP:6}-{UP:6}-{UP:5}-{UP:5}-{UP:5}-{UP:5}"],
    "1password-service-account-token": ["ops_eyJ{b64:260}"],
    "adobe-client-secret": ["p8e-{alnum:32}"],
    "age-secret-key": ["AGE-SECRET-KEY-1{bech:58}"],
    "airtable-personnal-access-token": ["pat{alnum:14}.{hex:64}"],
    "alibaba-access-key-id": ["LTAI{alnum:20}"],
    "anthropic-admin-api-key": ["sk-ant-admin01-{url:93}AA"],
    "anthropic-api-key": ["sk-ant-api03-{url:93}AA"],
    "artifactory-api-key": ["AKCp{alnum:69}"],
    "artifactory-reference-token": ["cmVmd{alnum:59}"],
    "authress-service-client-access-key": ["sc_{lower:12}.{lower:5}.acc_{lower:20}.{url:60}",
                                           "authress_{lower:10}.{lower:4}.acc-{lower:16}.{b64:40}"],
    "aws-access-token": ["AKIA{UP27:16}", "ASIA{UP27:16}", "A3T{UP:1}{UP27:16}"],
    "aws-amazon-bedrock-api-key-long-lived": ["ABSK{b64:150}"],
    "aws-amazon-bedrock-api-key-short-lived": ["bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t{b64:200}"],
    "azure-ad-client-secret": ["{alnum:3}{digits:1}Q~{url:34}"],
    "clickhouse-cloud-api-secret-key": ["4b1d{alnum:38}"],
    "clojars-api-token": ["CLOJARS_{lower:60}"],
    "cloudflare-origin-ca-key": ["v1.0-{hex:24}-{hex:146}"],
    "databricks-api-token": ["dapi{hex:32}", "dapi{hex:32}-2"],
    "digitalocean-access-token": ["doo_v1_{hex:64}"],
    "digitalocean-pat": ["dop_v1_{hex:64}"],
    "digitalocean-refresh-token": ["dor_v1_{hex:64}"],
    "doppler-api-token": ["dp.pt.{alnum:43}"],
    "duffel-api-token": ["duffel_test_{url:43}", "duffel_live_{url:43}"],
    "dynatrace-api-token": ["dt0c01.{UP:24}.{UP:64}"],
    "easypost-api-token": ["EZAK{alnum:54}"],
    "easypost-test-api-token": ["EZTK{alnum:54}"],
    "facebook-page-access-token": ["EAAM{alnum:120}", "EAAC{alnum:110}"],
    "flutterwave-encryption-key": ["FLWSECK_TEST-{ah:12}"],
    "flutterwave-public-key": ["FLWPUBK_TEST-{ah:32}-X"],
    "flutterwave-secret-key": ["FLWSECK_TEST-{ah:32}-X"],
    "flyio-access-token": ["fo1_{url:43}", "fm2_{b64:120}"],
    "frameio-api-token": ["fio-u-{url:64}"],
    "gcp-api-key": ["AIza{url:35}"],
    "github-app-token": ["ghu_{alnum:36}", "ghs_{alnum:36}"],
    "github-fine-grained-pat": ["github_pat_{alnum:22}_{alnum:59}"],
    "github-oauth": ["gho_{alnum:36}"],
    "github-pat": ["ghp_{alnum:36}"],
    "github-refresh-token": ["ghr_{alnum:36}"],
    "gitlab-cicd-job-token": ["glcbt-{alnum:3}_{url:20}"],
    "gitlab-deploy-token": ["gldt-{url:20}"],
    "gitlab-feature-flag-client-token": ["glffct-{url:20}"],
    "gitlab-feed-token": ["glft-{url:20}"],
    "gitlab-incoming-mail-token": ["glimt-{url:25}"],
    "gitlab-kubernetes-agent-token": ["glagent-{url:50}"],
    "gitlab-oauth-app-secret": ["gloas-{url:64}"],
    "gitlab-pat": ["glpat-{url:20}"],
    "gitlab-pat-routable": ["glpat-{url:40}.01{lower:7}"],
    "gitlab-ptt": ["glptt-{hex:40}"],
    "gitlab-rrt": ["GR1348941{url:20}"],
    "gitlab-runner-authentication-token": ["glrt-{url:20}"],
    "gitlab-runner-authentication-token-routable": ["glrt-t1_{url:30}.01{lower:7}"],
    "gitlab-scim-token": ["glsoat-{url:20}"],
    "gitlab-session-cookie": [("_gitlab_session={v}", "{lower:32}")],
    "grafana-api-key": ["eyJrIjoi{alnum:80}"],
    "grafana-cloud-api-token": ["glc_{alnum:60}"],
    "grafana-service-account-token": ["glsa_{alnum:32}_{hex:8}"],
    "harness-api-key": ["pat.{url:22}.{alnum:24}.{alnum:20}", "sat.{url:22}.{alnum:24}.{alnum:20}"],
    "hashicorp-tf-api-token": ["{lower:14}.atlasv1.{url:64}"],
    "heroku-api-key-v2": ["HRKU-AA{url:58}"],
    "huggingface-access-token": ["hf_{alpha:34}"],
    "huggingface-organization-api-token": ["api_org_{alpha:34}"],
    "infracost-api-token": ["ico-{alnum:32}"],
    "intra42-client-secret": ["s-s4t2ud-{hex:64}", "s-s4t2af-{hex:64}"],
    "jwt": ["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{alnum:60}.{url:43}", "eyJhbGciOiJub25lIn0.eyJ{alnum:40}."],
    "jwt-base64": ["ZXlKaGJHY2lPaUpJVXpJMU5pSjku{b64:120}"],
    "linear-api-key": ["lin_api_{alnum:40}"],
    "maxmind-license-key": ["{alnum:6}_{alnum:29}_mmk"],
    "notion-api-token": ["ntn_{digits:11}{alnum:35}"],
    "npm-access-token": ["npm_{alnum:36}"],
    "octopus-deploy-api-key": ["API-{UP:26}"],
    "openai-api-key": ["sk-proj-{url:74}T3BlbkFJ{url:74}", "sk-{alnum:20}T3BlbkFJ{alnum:20}",
                       "sk-svcacct-{url:58}T3BlbkFJ{url:58}"],
    "openshift-user-token": ["sha256~{url:43}"],
    "perplexity-api-key": ["pplx-{alnum:48}"],
    "planetscale-api-token": ["pscale_tkn_{url:43}"],
    "planetscale-oauth-token": ["pscale_oauth_{url:43}"],
    "planetscale-password": ["pscale_pw_{url:43}"],
    "postman-api-token": ["PMAK-{hex:24}-{hex:34}"],
    "prefect-api-token": ["pnu_{alnum:36}"],
    "pulumi-api-token": ["pul-{hex:40}"],
    "pypi-upload-token": ["pypi-AgEIcHlwaS5vcmc{url:70}"],
    "readme-api-token": ["rdme_{lower:70}"],
    "rubygems-api-token": ["rubygems_{hex:48}"],
    "scalingo-api-token": ["tk-us-{url:48}"],
    "sendgrid-api-token": ["SG.{url:22}.{url:43}"],
    "sendinblue-api-token": ["xkeysib-{hex:64}-{alnum:16}"],
    "sentry-org-token": ["sntrys_eyJpYXQiO{alnum:30}LCJyZWdpb25fdXJs{alnum:40}_{b64:43}"],
    "sentry-user-token": ["sntryu_{hex:64}"],
    "settlemint-application-access-token": ["sm_aat_{alnum:16}"],
    "settlemint-personal-access-token": ["sm_pat_{alnum:16}"],
    "settlemint-service-access-token": ["sm_sat_{alnum:16}"],
    "shippo-api-token": ["shippo_live_{hex:40}", "shippo_test_{hex:40}"],
    "shopify-access-token": ["shpat_{hex:32}"],
    "shopify-custom-access-token": ["shpca_{hex:32}"],
    "shopify-private-app-access-token": ["shppa_{hex:32}"],
    "shopify-shared-secret": ["shpss_{hex:32}"],
    "slack-app-token": ["xapp-1-A{UP:10}-{digits:13}-{hex:64}"],
    "slack-bot-token": ["xoxb-{digits:12}-{digits:13}-{alnum:24}"],
    "slack-config-access-token": ["xoxe.xoxp-1-{UP:164}"],
    "slack-config-refresh-token": ["xoxe-1-{UP:146}"],
    "slack-legacy-bot-token": ["xoxb-{digits:10}-{alnum:24}"],
    "slack-legacy-token": ["xoxs-{digits:10}-{digits:10}-{digits:10}-{hex:20}"],
    "slack-legacy-workspace-token": ["xoxa-2-{alnum:40}", "xoxr-{alnum:40}"],
    "slack-user-token": ["xoxp-{digits:10}-{digits:10}-{digits:12}-{alnum:32}"],
    "slack-webhook-url": [("https://hooks.slack.com/services/{v}", "T{UP:8}/B{UP:8}/{alnum:24}")],
    "microsoft-teams-webhook": [("https://acme.webhook.office.com/webhookb2/{v}",
                                 "{uuid}@{uuid}/IncomingWebhook/{lower:32}/{uuid}")],
    "sourcegraph-access-token": ["sgp_{hex:16}_{hex:40}", "sgp_local_{hex:40}"],
    "square-access-token": ["EAAA{url:60}", "sq0atp-{url:22}"],
    "stripe-access-token": ["sk_live_{alnum:24}", "sk_test_{alnum:24}", "rk_live_{alnum:24}"],
    "twilio-api-key": ["SK{hex:32}"],
    "vault-batch-token": ["hvb.{url:150}"],
    "vault-service-token": ["hvs.{url:95}", "s.{alnum:20}{digits:4}"],
}

# Rules that match on a name holding the service's name (gitleaks' `[\w.-]{0,50}?(?:<keyword>)…` rules): measured
# in named contexts, under names built from the given stems (default: the rule id itself).
NAMED: dict[str, tuple[list[str], list[str]]] = {
    "adafruit-api-key": (["{l_:32}"], ["adafruit-api-key", "adafruit-io-key"]),
    "adobe-client-id": (["{hex:32}"], ["adobe-client-id"]),
    "airtable-api-key": (["{lower:17}"], ["airtable-api-key"]),
    "algolia-api-key": (["{lower:32}"], ["algolia-api-key", "algolia-admin-key"]),
    "alibaba-secret-key": (["{lower:30}"], ["alibaba-secret-key"]),
    "asana-client-id": (["{digits:16}"], ["asana-client-id"]),
    "asana-client-secret": (["{lower:32}"], ["asana-client-secret"]),
    "atlassian-api-token": (["{lower:20}{hex:4}", "ATATT3{url:186}"], ["atlassian-api-token", "jira-token"]),
    "beamer-api-token": (["b_{l_:44}"], ["beamer-api-token"]),
    "bitbucket-client-id": (["{lower:32}"], ["bitbucket-client-id"]),
    "bitbucket-client-secret": (["{l_:64}"], ["bitbucket-client-secret"]),
    "bittrex-access-key": (["{lower:32}"], ["bittrex-access-key"]),
    "bittrex-secret-key": (["{lower:32}"], ["bittrex-secret-key"]),
    "cisco-meraki-api-key": (["{hex:40}"], ["meraki-api-key"]),
    "cloudflare-api-key": (["{l_:40}"], ["cloudflare-api-key"]),
    "cloudflare-global-api-key": (["{hex:37}"], ["cloudflare-global-api-key"]),
    "codecov-access-token": (["{lower:32}"], ["codecov-token"]),
    "cohere-api-token": (["{alnum:40}"], ["cohere-api-token", "co-api-key"]),
    "coinbase-access-token": (["{l_:64}"], ["coinbase-access-token"]),
    "confluent-access-token": (["{lower:16}"], ["confluent-access-token"]),
    "confluent-secret-key": (["{lower:64}"], ["confluent-secret-key"]),
    "contentful-delivery-api-token": (["{l_:43}"], ["contentful-delivery-api-token"]),
    "datadog-access-token": (["{lower:40}"], ["datadog-access-token", "datadog-app-key"]),
    "defined-networking-api-token": (["dnkey-{l_:26}-{l_:52}"], ["defined-networking-api-token", "dnkey"]),
    "discord-api-token": (["{hex:64}"], ["discord-api-token"]),
    "discord-client-id": (["{digits:18}"], ["discord-client-id"]),
    "discord-client-secret": (["{l_:32}"], ["discord-client-secret"]),
    "droneci-access-token": (["{lower:32}"], ["droneci-access-token"]),
    "dropbox-api-token": (["{lower:15}"], ["dropbox-api-token"]),
    "dropbox-long-lived-api-token": (["{lower:11}AAAAAAAAAA{l_:43}"], ["dropbox-long-lived-api-token"]),
    "dropbox-short-lived-api-token": (["sl.{l_:135}"], ["dropbox-short-lived-api-token"]),
    "etsy-access-token": (["{lower:24}"], ["etsy-access-token"]),
    "facebook-access-token": (["{digits:16}|{l_:32}", "{digits:15}%7C{l_:30}"], ["facebook-access-token"]),
    "facebook-secret": (["{hex:32}"], ["facebook-app-secret"]),
    "fastly-api-token": (["{l_:32}"], ["fastly-api-token"]),
    "finicity-api-token": (["{hex:32}"], ["finicity-api-token"]),
    "finicity-client-secret": (["{lower:20}"], ["finicity-client-secret"]),
    "finnhub-access-token": (["{lower:20}"], ["finnhub-access-token"]),
    "flickr-access-token": (["{lower:32}"], ["flickr-access-token"]),
    "freshbooks-access-token": (["{lower:64}"], ["freshbooks-access-token"]),
    "generic-api-key": (["{alnum:32}", "{url:24}"], ["api-key", "auth-token", "access-key", "client-credentials",
                                                    "db-creds", "service-passwd", "app-secret"]),
    "gitter-access-token": (["{l_:40}"], ["gitter-access-token"]),
    "gocardless-api-token": (["live_{l_:40}"], ["gocardless-api-token"]),
    "heroku-api-key": (["{uuid}"], ["heroku-api-key"]),
    "hubspot-api-key": (["{uuid}"], ["hubspot-api-key"]),
    "intercom-api-key": (["{l_:60}"], ["intercom-api-key"]),
    "jfrog-api-key": (["{lower:73}"], ["jfrog-api-key", "artifactory-api-key"]),
    "jfrog-identity-token": (["{lower:64}"], ["jfrog-identity-token"]),
    "kraken-access-token": (["{kr:86}"], ["kraken-access-token"]),
    "kucoin-access-token": (["{hex:24}"], ["kucoin-access-token"]),
    "kucoin-secret-key": (["{uuid}"], ["kucoin-secret-key"]),
    "launchdarkly-access-token": (["{l_:40}"], ["launchdarkly-access-token"]),
    "linear-client-secret": (["{hex:32}"], ["linear-client-secret"]),
    "linkedin-client-id": (["{lower:14}"], ["linkedin-client-id"]),
    "linkedin-client-secret": (["{lower:16}"], ["linkedin-client-secret"]),
    "lob-api-key": (["live_{hex:35}", "test_{hex:35}"], ["lob-api-key"]),
    "lob-pub-api-key": (["test_pub_{hex:31}"], ["lob-pub-api-key"]),
    "looker-client-id": (["{lower:20}"], ["looker-client-id"]),
    "looker-client-secret": (["{lower:24}"], ["looker-client-secret"]),
    "mailchimp-api-key": (["{hex:32}-us{digits:2}"], ["mailchimp-api-key"]),
    "mailgun-private-api-token": (["key-{hex:32}"], ["mailgun-private-api-token", "mailgun-api-key"]),
    "mailgun-pub-key": (["pubkey-{hex:32}"], ["mailgun-pub-key"]),
    "mailgun-signing-key": (["{ah:32}-{ah:8}-{ah:8}"], ["mailgun-signing-key"]),
    "mapbox-api-token": (["pk.{lower:60}.{lower:22}"], ["mapbox-api-token", "mapbox-access-token"]),
    "mattermost-access-token": (["{lower:26}"], ["mattermost-access-token"]),
    "messagebird-api-token": (["{lower:25}"], ["messagebird-api-token"]),
    "messagebird-client-id": (["{uuid}"], ["messagebird-client-id"]),
    "netlify-access-token": (["{l_:43}"], ["netlify-access-token", "netlify-auth-token"]),
    "new-relic-browser-api-token": (["NRJS-{hex:19}"], ["new-relic-browser-api-token"]),
    "new-relic-insert-key": (["NRII-{l_:32}"], ["new-relic-insert-key"]),
    "new-relic-user-api-id": (["{lower:64}"], ["new-relic-user-api-id"]),
    "new-relic-user-api-key": (["NRAK-{lower:27}"], ["new-relic-user-api-key", "newrelic-api-key"]),
    "nytimes-access-token": (["{l_:32}"], ["nytimes-access-token"]),
    "okta-access-token": (["00{url:40}"], ["okta-access-token", "okta-api-token"]),
    "plaid-api-token": (["access-sandbox-{uuid}"], ["plaid-api-token"]),
    "plaid-client-id": (["{lower:24}"], ["plaid-client-id"]),
    "plaid-secret-key": (["{lower:30}"], ["plaid-secret-key"]),
    "privateai-api-token": (["{lower:32}"], ["privateai-api-token", "private-ai-api-key"]),
    "rapidapi-access-token": (["{l_:50}"], ["rapidapi-access-token", "rapidapi-key"]),
    "sendbird-access-id": (["{uuid}"], ["sendbird-access-id"]),
    "sendbird-access-token": (["{hex:40}"], ["sendbird-access-token"]),
    "sentry-access-token": (["{hex:64}"], ["sentry-access-token", "sentry-auth-token"]),
    "snyk-api-token": (["{uuid}"], ["snyk-token", "snyk-api-key"]),
    "sonar-api-token": (["squ_{lower:40}", "{lower:40}"], ["sonar-token", "sonar-login"]),
    "squarespace-access-token": (["{uuid}"], ["squarespace-access-token"]),
    "sumologic-access-id": (["su{alnum:12}"], ["sumologic-access-id"]),
    "sumologic-access-token": (["{lower:64}"], ["sumologic-access-token", "sumo-access-key"]),
    "telegram-bot-api-token": (["{digits:10}:A{l_:34}"], ["telegram-bot-api-token", "telegram-bot-token"]),
    "travisci-access-token": (["{lower:22}"], ["travis-api-token"]),
    "twitch-api-token": (["{lower:30}"], ["twitch-api-token"]),
    "twitter-access-secret": (["{lower:45}"], ["twitter-access-secret"]),
    "twitter-access-token": (["{digits:19}-{alnum:40}"], ["twitter-access-token"]),
    "twitter-api-key": (["{lower:25}"], ["twitter-api-key"]),
    "twitter-api-secret": (["{lower:50}"], ["twitter-api-secret"]),
    "twitter-bearer-token": (["AAAAAAAAAAAAAAAAAAAAAA{alnum:90}"], ["twitter-bearer-token"]),
    "typeform-api-token": (["tfp_{l_:59}"], ["typeform-api-token"]),
    "yandex-access-token": (["t1.{url:20}.{url:86}"], ["yandex-access-token"]),
    "yandex-api-key": (["AQVN{url:36}"], ["yandex-api-key"]),
    "yandex-aws-access-token": (["YC{url:38}"], ["yandex-aws-access-token"]),
    "zendesk-secret-key": (["{lower:40}"], ["zendesk-secret-key", "zendesk-api-token"]),
}

_PEM = "{b64:64}\n{b64:64}\n{b64:64}\n{b64:40}=="
# Rules whose format is a structure (a header, a command line, a file): their own contexts,
# (context, held_out, template with {v} or {b64v}, value shape).
SPECIAL: dict[str, list[tuple[str, bool, str, str]]] = {
    "curl-auth-header": [
        ("curl bearer", False, 'curl -s -H "Authorization: Bearer {v}" https://api.example.com/v1/me', "{alnum:40}"),
        ("curl basic", False, "curl -H 'Authorization: Basic {v}' https://ci.example.com/api/json", "{b64:32}=="),
        ("curl token", False, 'curl -H "Authorization: Token {v}" https://api.example.com/', "{hex:40}"),
        ("curl x-api-key", False, 'curl --header "X-Api-Key: {v}" https://api.example.com/items', "{alnum:32}"),
        ("curl x-auth-token", False, 'curl -H "X-Auth-Token: {v}" https://api.example.com/', "{url:36}"),
        ("curl multiline", True,
         'curl -X POST https://api.example.com/v2/jobs \\\n  -H "Content-Type: application/json" \\\n'
         '  -H "Authorization: Bearer {v}" \\\n  -d \'{"name": "nightly"}\'', "{url:48}"),
        ("http trace", True, "> POST /v1/upload HTTP/2\n> Host: api.example.com\n> Private-Token: {v}\n", "{url:26}"),
    ],
    "curl-auth-user": [
        ("curl -u", False, "curl -u admin:{v} https://jenkins.example.com/api/json", "{alnum:16}"),
        ("curl --user quoted", False, 'curl --user "deploy:{v}" https://repo.example.com/upload', "{url:20}"),
        ("curl --user=", False, "curl -fsS --user=ci-bot:{v} https://nexus.example.com/", "{alnum:24}"),
        ("wget", True, "wget --user=ci -O out.tar.gz https://dl.example.com/x && curl -u ci:{v} https://x.example.com",
         "{alnum:18}"),
    ],
    "freemius-secret-key": [
        ("php array", False, "$fs = fs_dynamic_init( array(\n    'id' => '1234',\n    'secret_key' => '{v}',\n", "sk_{alnum:29}"),
        ("php config", True, "define('FS_CONFIG', ['public_key' => 'pk_abc', \"secret_key\" => \"{v}\"]);", "sk_{alnum:29}"),
    ],
    "hashicorp-tf-password": [
        ("terraform", False, 'resource "azurerm_sql_server" "db" {\n  administrator_login_password = "{v}"\n}',
         "{lower:16}"),
        ("terraform plan", True, '      + password                     = "{v}"\n      + username = "admin"', "{l_:14}"),
    ],
    "kubernetes-secret-yaml": [
        ("kubectl get secret yaml", False,
         "apiVersion: v1\ndata:\n  api-token: {b64v}\n  username: YWRtaW4=\nkind: Secret\nmetadata:\n  name: app\n"
         "type: Opaque\n", "{alnum:32}"),
        ("secret manifest", False,
         "apiVersion: v1\nkind: Secret\nmetadata:\n  name: registry\ntype: kubernetes.io/dockerconfigjson\ndata:\n"
         "  .dockerconfigjson: {b64v}\n", '{"auths":{"r.example.com":{"auth":"{alnum:24}"}}}'),
        ("kubectl get secret json", False,
         '{\n    "apiVersion": "v1",\n    "data": {\n        "connection": "{b64v}"\n    },\n    "kind": "Secret"\n}',
         "postgres://app:{alnum:16}@db:5432/app"),
        ("stringData", True,
         "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: smtp\nstringData:\n  smtp-pass: {v}\n", "{alnum:20}"),
    ],
    "nuget-config-password": [
        ("NuGet.Config", False, '<packageSourceCredentials>\n  <feed>\n    <add key="Username" value="ci" />\n'
         '    <add key="ClearTextPassword" value="{v}" />\n  </feed>', "{alnum:20}"),
        ("NuGet.Config password", True, '<add key="Password" value="{v}" />', "{b64:40}=="),
    ],
    "private-key": [
        ("rsa", False, "-----BEGIN RSA PRIVATE KEY-----\n{v}\n-----END RSA PRIVATE KEY-----\n", _PEM),
        ("openssh", False, "$ cat ~/.ssh/id_ed25519\n-----BEGIN OPENSSH PRIVATE KEY-----\n{v}\n"
         "-----END OPENSSH PRIVATE KEY-----\n", _PEM),
        ("pkcs8 in json", False, '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\n{v}'
         '\\n-----END PRIVATE KEY-----\\n"}', "{b64:64}"),
        ("ec", True, "-----BEGIN EC PRIVATE KEY-----\n{v}\n-----END EC PRIVATE KEY-----", _PEM),
    ],
    "sidekiq-secret": [
        ("bundle config env", False, "BUNDLE_GEMS__CONTRIBSYS__COM={v}", "{hex:8}:{hex:8}"),
        ("bundle config export", False, 'export BUNDLE_ENTERPRISE__CONTRIBSYS__COM="{v}"', "{hex:8}:{hex:8}"),
        ("bundle config yaml", True, '---\nBUNDLE_GEMS__CONTRIBSYS__COM: "{v}"', "{hex:8}:{hex:8}"),
    ],
    "sidekiq-sensitive-url": [
        ("Gemfile source", False, 'source "https://{v}@gems.contribsys.com/" do', "{hex:8}:{hex:8}"),
        ("bundle output", True, "Fetching source index from https://{v}@enterprise.contribsys.com/", "{hex:8}:{hex:8}"),
    ],
}

EXCLUDED: dict[str, str] = {
    "pkcs12-file": "matches a file's path (*.p12, *.pfx), not text: a terminal shows the name of a binary key store, "
                   "which is not a secret",
}
"""Rules left out. One partial exclusion: sourcegraph-access-token's bare 40-hex alternative is the shape of
every git SHA-1 (a look-alike below); its `sgp_` forms are measured."""

# Look-alikes that must come back unchanged: (category, held_out, text).
LOOKALIKES: list[tuple[str, bool, str]] = [
    ("hash", False, "$ sha256sum dist/app.tar.gz\n"
     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  dist/app.tar.gz"),
    ("hash", False, "$ md5sum README.md\nd41d8cd98f00b204e9800998ecf8427e  README.md"),
    ("hash", False, "Digest: sha256:4d1a5a2e0c2f1b8d2f8bd3b84e2a35a5c1b0e9d1f2a3b4c5d6e7f8091a2b3c4d\n"
     "Status: Downloaded newer image for python:3.12-slim"),
    ("hash", False, "REPOSITORY   TAG    DIGEST                                                                    "
     "IMAGE ID\nnginx        1.27   sha256:0f04e4f646a3f14bf31d8bc8d885b6c951fdcf42589d06845f64d18aec6a3c4d   "
     "e4720093a3c1"),
    ("hash", False, "SHA512 (app.zip) = cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85"
     "f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"),
    ("hash", False, "$ openssl dgst -sha1 key.pub\nSHA1(key.pub)= 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"),
    ("hash", False, "$ ssh-keygen -lf ~/.ssh/id_ed25519.pub\n256 SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s "
     "dev@laptop (ED25519)"),
    ("uuid", False, "$ cat /proc/sys/kernel/random/uuid\n3b241101-e2bb-4255-8caf-4136c566a962"),
    ("uuid", False, '/dev/sda1: UUID="a8f5f167-f44f-4964-e6c9-2c1f1e2a0b7d" BLOCK_SIZE="4096" TYPE="ext4" '
     'PARTUUID="9b8e1c2d-01"'),
    ("uuid", False, '{"request_id": "f47ac10b-58cc-4372-a567-0e02b2c3d479", "status": "ok"}'),
    ("uuid", False, "  Invocation ID: 6f1c7a3e9b2d4e8f8a1b2c3d4e5f6a7b\n  Boot ID: 0d3c1f2e-5b6a-4c7d-8e9f-0a1b2c3d4e5f"),
    ("uuid", False, "NAME        UID                                    STATUS\nweb-7d9f    "
     "0f9b5a2e-3c4d-4e5f-8a9b-1c2d3e4f5a6b   Running"),
    ("base64", False, "$ echo 'hello world, this is an ordinary sentence' | base64\n"
     "aGVsbG8gd29ybGQsIHRoaXMgaXMgYW4gb3JkaW5hcnkgc2VudGVuY2UK"),
    ("base64", False, '{"message": "VGhlIHF1aWNrIGJyb3duIGZveCBqdW1wcyBvdmVyIHRoZSBsYXp5IGRvZw==", "encoding": "base64"}'),
    ("base64", False, "Content-Transfer-Encoding: base64\n\nRGVhciB0ZWFtLCB0aGUgcmVsZWFzZSBpcyBvdXQu"),
    ("version", False, "$ python3 --version\nPython 3.12.7\n$ node -v\nv20.18.1\n$ go version\n"
     "go version go1.23.4 linux/amd64"),
    ("version", False, "Linux build-01 6.8.0-49-generic #49-Ubuntu SMP PREEMPT_DYNAMIC x86_64 GNU/Linux"),
    ("version", False, "Package       Version\n------------- -----------\ntorch         2.13.0+cpu\n"
     "transformers  4.57.1\npeft          0.17.1"),
    ("version", False, '{\n  "name": "web",\n  "version": "2.14.0-rc.3",\n  "engines": {"node": ">=20.11.0"}\n}'),
    ("version", False, "ii  openssl  3.0.13-0ubuntu3.4  amd64  Secure Sockets Layer toolkit"),
    ("path", False, "$ find . -name '*.key' -o -name '*token*'\n./certs/server.key\n./src/auth/token_store.py\n"
     "./tests/fixtures/secret_manager_test.go"),
    ("path", False, "KEY_FILE=/etc/ssl/private/server.key\nTOKEN_PATH=/var/run/secrets/kubernetes.io/"
     "serviceaccount/token"),
    ("path", False, "$ which python3\n/home/dev/.pyenv/versions/3.12.7/bin/python3"),
    ("path", False, "drwxr-xr-x  5 dev dev  4096 Dec  6 12:00 node_modules\n-rw-------  1 dev dev   411 Dec  6 "
     "11:58 id_ed25519"),
    ("path", False, "/usr/lib/python3/dist-packages/cryptography/hazmat/primitives/asymmetric/rsa.py"),
    ("git", False, "commit 3f786850e387550fdab836ed7e6dc881de23001b (HEAD -> main, origin/main)\n"
     "Author: Dev <dev@example.com>\nDate:   Sat Dec 6 12:00:00 2026 +0000\n\n    Rotate the API token reader"),
    ("git", False, "$ git remote -v\norigin\tgit@github.com:acme/web.git (fetch)\n"
     "origin\thttps://github.com/acme/web.git (push)"),
    ("git", False, "$ git ls-remote origin\n9fceb02d0ae598e95dc970b74767f19372d61af8\tHEAD\n"
     "9fceb02d0ae598e95dc970b74767f19372d61af8\trefs/heads/main"),
    ("git", False, "$ git cat-file -p HEAD\ntree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
     "parent 1a410efbd13591db07496601ebc7a059dd55cfe9\nauthor Dev <dev@example.com> 1765022400 +0000"),
    ("git", False, "$ git config --list\nuser.name=Dev\nuser.signingkey=3AA5C34371567BD2\n"
     "credential.helper=store\ncommit.gpgsign=true"),
    ("lock file", False, '    "node_modules/lodash": {\n      "version": "4.17.21",\n      "resolved": '
     '"https://registry.npmjs.org/lodash/-/lodash-4.17.21.tgz",\n      "integrity": "sha512-v2kDEe57lecTulaDIuNTPy3Ry4g'
     'LGJ6Z1O3vE1krgXZNrsQ+LFTGHVxVjcXPs17LhbZVGedAJv8XZ1tvj5FvSg=="\n    }'),
    ("lock file", False, 'lodash@^4.17.21:\n  version "4.17.21"\n  resolved "https://registry.yarnpkg.com/lodash/-/'
     'lodash-4.17.21.tgz#679591c564c3bffaae8454cf0b3df370c3d6911c"\n  integrity sha512-v2kDEe57lecTulaDIuNTPy3Ry4g'
     'LGJ6Z1O3vE1krgXZNrsQ+LFTGHVxVjcXPs17LhbZVGedAJv8XZ1tvj5FvSg=='),
    ("lock file", False, '[[package]]\nname = "serde"\nversion = "1.0.215"\nsource = "registry+https://github.com/'
     'rust-lang/crates.io-index"\nchecksum = "6513c1ad0b11a9376da888e3e0baa0077f1aed55c17f50e7b2397136129fb88f"'),
    ("lock file", False, 'files = [\n    {file = "requests-2.32.3-py3-none-any.whl", hash = "sha256:70761cfe03c773ce'
     'b22aa2f671b4757976145175cdfca038c02654d061d6dcc6"},\n]'),
    ("lock file", False, "golang.org/x/crypto v0.31.0 h1:ihbySMvVjLAeSH1IbfcRTkD/iNscyz8rGzjF/E5hV6U=\n"
     "golang.org/x/crypto v0.31.0/go.mod h1:kDsLvtWBEx7MV9tJOj9bnXsPbxwJQ6csT/x4KIYDMkY="),
    ("prose", False, "passwd: password updated successfully"),
    ("prose", False, "The password must contain at least 12 characters, including a digit."),
    ("prose", False, "sudo: 3 incorrect password attempts"),
    ("prose", False, "Permission denied (publickey,password)."),
    ("prose", False, "mysql: [Warning] Using a password on the command line interface can be insecure."),
    ("prose", False, "error: the access token has expired, run `gh auth login` to refresh it"),
    ("prose", False, "# token: set this from the environment, never commit it"),
    # held out: written before tuning, never looked at while tuning
    ("hash", True, "$ b2sum notes.txt\n786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419d25e1031afee5853"
     "13896444934eb04b903a685b1448b755d56f701afe9be2ce  notes.txt"),
    ("uuid", True, "Created network 5f3c2a1b-9d8e-4f7a-b6c5-d4e3f2a1b0c9 (bridge)"),
    ("base64", True, "data:text/plain;base64,SGVyZSBpcyBzb21lIHBsYWluIHRleHQgZm9yIHRoZSB0ZXN0Lg=="),
    ("version", True, "rustc 1.83.0 (90b35a623 2024-11-26)\ncargo 1.83.0 (5ffbef321 2024-10-29)"),
    ("path", True, "secret_file: /run/secrets/db_password\ntoken_file: ~/.config/gh/hosts.yml"),
    ("git", True, "$ git log --oneline -3\n9fceb02 Rotate the token cache\n1a410ef Add password reset form\n"
     "4b825dc Initial commit"),
    ("lock file", True, '"requests": {\n    "hashes": [\n        "sha256:55365417734eb18255590a9ff9eb97e9e1da868d4ccd6402'
     '399eaf68af20a760"\n    ],\n    "version": "==2.32.3"\n}'),
    ("prose", True, "Forgot your password? We sent a reset link to d***@example.com."),
]
