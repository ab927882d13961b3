/*
 * jwt_auth: a Mosquitto 2.0 plugin (plugin API v5) that accepts a client when it presents an
 * Entra-style access token (an RS256 JWT) that the broker verifies itself, offline, against one
 * RSA public key. It exists for the tests: scripts/broker/mosquitto.ts compiles and loads it.
 *
 * Where the token comes from:
 *   - MQTT 3.1.1 and 5, CONNECT: the password is the token (the username is not looked at);
 *   - MQTT 5 enhanced authentication with the configured method (default OAUTH2-JWT): the token
 *     is the authentication data of CONNECT, or of the AUTH (0x18) that answers the broker's
 *     request for it when CONNECT carried none; a re-authentication (AUTH 0x19) on a live
 *     connection presents a new token, which moves that connection's expiry.
 *
 * A token is accepted when: its header says alg RS256; the signature verifies (SHA-256, PKCS#1
 * v1.5) against the key; `exp` is in the future; `nbf` and `iat`, when present, are not more than
 * SKEW_S in the future; `aud` (a string or an array) holds one of the accepted audiences; `iss`
 * is one of the accepted issuers, when issuers are configured; and it names a subject (`sub`, or
 * else `preferred_username`), which becomes the client's username, so ACL patterns (%u) can use it.
 *
 * Every accepted connection is remembered with its token's `exp`; on the broker's tick, the
 * connections whose token expired are disconnected (MQTT 5 clients get DISCONNECT 0x98,
 * administrative action). Mosquitto 2.0.11 only delivers the tick to plugins loaded with
 * `per_listener_settings false` (it calls no per-listener tick before 2.0.15).
 *
 * Options (plugin_opt_*):
 *   public_key_file  PEM file with the RSA public key (SubjectPublicKeyInfo); required
 *   audience         accepted `aud` values, comma-separated; required
 *   issuer           accepted `iss` values, exact, comma-separated; optional (any issuer)
 *   method           enhanced authentication method; default OAUTH2-JWT
 *
 * Decisions are logged with the client id, the reason and the subject, never the token.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

/* Clock difference allowed between the token's issuer and the broker, for nbf and iat (seconds). */
#define SKEW_S 60
/* Longer "tokens" are refused before any decoding (Entra's are 1-3 kB). */
#define MAX_TOKEN_LEN 16384

/* One accepted connection: the broker's client object, its id (to kick it) and its token's exp. */
struct session {
	struct session *next;
	const struct mosquitto *client;
	char *client_id;
	time_t exp;
};

struct plugin {
	mosquitto_plugin_id_t *identifier;
	EVP_PKEY *key;
	char *audiences;
	char *issuers; /* NULL: any issuer */
	char *method;
	struct session *sessions;
	time_t last_sweep;
};

/* The outcome of a verification: on success `subject` and `exp`, else the reason (a constant). */
struct verdict {
	bool ok;
	const char *reason;
	char subject[256];
	time_t exp;
};

/* True when `value` is one of the comma-separated items of `list` (spaces around items ignored). */
static bool list_has(const char *list, const char *value)
{
	size_t value_len = strlen(value);
	const char *item = list;
	while(*item){
		while(*item == ' ') item++;
		const char *end = strchr(item, ',');
		size_t len = end ? (size_t)(end - item) : strlen(item);
		while(len > 0 && item[len - 1] == ' ') len--;
		if(len == value_len && strncmp(item, value, len) == 0) return true;
		if(!end) break;
		item = end + 1;
	}
	return false;
}

static int b64url_value(char c)
{
	if(c >= 'A' && c <= 'Z') return c - 'A';
	if(c >= 'a' && c <= 'z') return c - 'a' + 26;
	if(c >= '0' && c <= '9') return c - '0' + 52;
	if(c == '-') return 62;
	if(c == '_') return 63;
	return -1;
}

/* Decodes unpadded base64url (RFC 7515) into a new NUL-terminated buffer; NULL when invalid. */
static unsigned char *b64url_decode(const char *in, size_t in_len, size_t *out_len)
{
	if(in_len % 4 == 1) return NULL;
	unsigned char *out = mosquitto_malloc(in_len * 3 / 4 + 1);
	if(!out) return NULL;
	uint32_t bits = 0;
	int bit_count = 0;
	size_t n = 0;
	for(size_t i = 0; i < in_len; i++){
		int v = b64url_value(in[i]);
		if(v < 0){
			mosquitto_free(out);
			return NULL;
		}
		bits = (bits << 6) | (uint32_t)v;
		bit_count += 6;
		if(bit_count >= 8){
			bit_count -= 8;
			out[n++] = (unsigned char)(bits >> bit_count);
		}
	}
	out[n] = '\0';
	*out_len = n;
	return out;
}

/* Decodes one base64url JSON segment of the token; NULL when it is not a JSON object. */
static cJSON *decode_json(const char *segment, size_t len)
{
	size_t json_len;
	unsigned char *json = b64url_decode(segment, len, &json_len);
	if(!json) return NULL;
	cJSON *value = cJSON_ParseWithLength((const char *)json, json_len);
	mosquitto_free(json);
	if(value && !cJSON_IsObject(value)){
		cJSON_Delete(value);
		return NULL;
	}
	return value;
}

static bool signature_ok(EVP_PKEY *key, const char *signed_part, size_t signed_len, const char *sig64, size_t sig64_len)
{
	size_t sig_len;
	unsigned char *sig = b64url_decode(sig64, sig64_len, &sig_len);
	if(!sig) return false;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx
		&& EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1
		&& EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)signed_part, signed_len) == 1;
	EVP_MD_CTX_free(ctx);
	mosquitto_free(sig);
	return ok;
}

static bool audience_ok(const struct plugin *p, const cJSON *aud)
{
	if(cJSON_IsString(aud)) return list_has(p->audiences, aud->valuestring);
	const cJSON *item;
	if(cJSON_IsArray(aud)){
		cJSON_ArrayForEach(item, aud){
			if(cJSON_IsString(item) && list_has(p->audiences, item->valuestring)) return true;
		}
	}
	return false;
}

/* Checks the claims of a token whose signature verified. */
static void check_claims(const struct plugin *p, const cJSON *claims, time_t now, struct verdict *v)
{
	const cJSON *sub = cJSON_GetObjectItemCaseSensitive(claims, "sub");
	const cJSON *upn = cJSON_GetObjectItemCaseSensitive(claims, "preferred_username");
	const cJSON *subject = cJSON_IsString(sub) && sub->valuestring[0] ? sub : upn;
	if(cJSON_IsString(subject) && subject->valuestring[0]){
		snprintf(v->subject, sizeof(v->subject), "%s", subject->valuestring);
	}

	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(claims, "exp");
	const cJSON *nbf = cJSON_GetObjectItemCaseSensitive(claims, "nbf");
	const cJSON *iat = cJSON_GetObjectItemCaseSensitive(claims, "iat");
	const cJSON *iss = cJSON_GetObjectItemCaseSensitive(claims, "iss");
	if(!cJSON_IsNumber(exp)) v->reason = "no exp claim";
	else if((double)now >= exp->valuedouble) v->reason = "token expired";
	else if(nbf && (!cJSON_IsNumber(nbf) || nbf->valuedouble > (double)(now + SKEW_S))) v->reason = "token not yet valid (nbf)";
	else if(iat && (!cJSON_IsNumber(iat) || iat->valuedouble > (double)(now + SKEW_S))) v->reason = "token issued in the future (iat)";
	else if(!audience_ok(p, cJSON_GetObjectItemCaseSensitive(claims, "aud"))) v->reason = "audience not accepted";
	else if(p->issuers && !(cJSON_IsString(iss) && list_has(p->issuers, iss->valuestring))) v->reason = "issuer not accepted";
	else if(!v->subject[0]) v->reason = "no sub or preferred_username claim";
	else{
		v->ok = true;
		v->exp = (time_t)exp->valuedouble;
	}
}

/* Verifies a compact JWS `header.payload.signature` of `len` bytes (not NUL-terminated). */
static void verify_token(const struct plugin *p, const char *token, size_t len, struct verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->reason = "malformed token";
	if(len == 0){
		v->reason = "no token";
		return;
	}
	if(len > MAX_TOKEN_LEN) return;
	const char *dot1 = memchr(token, '.', len);
	const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
	if(!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token))) return;

	cJSON *header = decode_json(token, (size_t)(dot1 - token));
	if(!header) return;
	const cJSON *alg = cJSON_GetObjectItemCaseSensitive(header, "alg");
	bool rs256 = cJSON_IsString(alg) && strcmp(alg->valuestring, "RS256") == 0;
	cJSON_Delete(header);
	if(!rs256){
		v->reason = "alg is not RS256";
		return;
	}
	if(!signature_ok(p->key, token, (size_t)(dot2 - token), dot2 + 1, len - (size_t)(dot2 + 1 - token))){
		v->reason = "bad signature";
		return;
	}
	cJSON *claims = decode_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	if(!claims) return;
	check_claims(p, claims, time(NULL), v);
	cJSON_Delete(claims);
}

static struct session *find_session(const struct plugin *p, const struct mosquitto *client)
{
	for(struct session *s = p->sessions; s; s = s->next){
		if(s->client == client) return s;
	}
	return NULL;
}

static void forget_session(struct plugin *p, const struct mosquitto *client)
{
	for(struct session **link = &p->sessions; *link; link = &(*link)->next){
		if((*link)->client == client){
			struct session *gone = *link;
			*link = gone->next;
			mosquitto_free(gone->client_id);
			mosquitto_free(gone);
			return;
		}
	}
}

/* Verifies the token and, when accepted, names the client after the subject and remembers exp. */
static int authenticate(struct plugin *p, struct mosquitto *client, const char *token, size_t len, const char *how)
{
	const char *id = mosquitto_client_id(client);
	struct verdict v;
	verify_token(p, token, len, &v);
	struct session *existing = find_session(p, client);
	const char *username = mosquitto_client_username(client);
	if(v.ok && existing && username && strcmp(username, v.subject) != 0){
		v.ok = false;
		v.reason = "another subject";
	}
	if(!v.ok){
		mosquitto_log_printf(MOSQ_LOG_WARNING, "jwt_auth: refused client %s (%s): %s; sub %s",
				id ? id : "?", how, v.reason, v.subject[0] ? v.subject : "?");
		return MOSQ_ERR_AUTH;
	}
	if(mosquitto_set_username(client, v.subject) != MOSQ_ERR_SUCCESS) return MOSQ_ERR_AUTH;
	struct session *s = existing;
	if(!s){
		s = mosquitto_calloc(1, sizeof(*s));
		if(!s || !(s->client_id = mosquitto_strdup(id ? id : ""))){
			mosquitto_free(s);
			return MOSQ_ERR_NOMEM;
		}
		s->client = client;
		s->next = p->sessions;
		p->sessions = s;
	}
	s->exp = v.exp;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "jwt_auth: accepted client %s (%s): sub %s, expires in %lds",
			s->client_id, how, v.subject, (long)(v.exp - time(NULL)));
	return MOSQ_ERR_SUCCESS;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	(void)event;
	struct mosquitto_evt_basic_auth *ed = event_data;
	const char *password = ed->password ? ed->password : "";
	return authenticate(userdata, ed->client, password, strlen(password), "password");
}

static int on_ext_auth(int event, void *event_data, void *userdata)
{
	struct plugin *p = userdata;
	struct mosquitto_evt_extended_auth *ed = event_data;
	/* Another method is not ours (the broker answers 0x8C). 2.0.11 leaves the method unset on
	 * CONTINUE; the broker has already held the client to the method it started with. */
	if(ed->auth_method && strcmp(ed->auth_method, p->method) != 0) return MOSQ_ERR_PLUGIN_DEFER;
	if(event == MOSQ_EVT_EXT_AUTH_START && ed->data_in_len == 0){
		/* No token yet: ask for it (AUTH 0x18, empty data); it comes in the client's AUTH 0x18. */
		return MOSQ_ERR_AUTH_CONTINUE;
	}
	const char *how = find_session(p, ed->client) ? "re-authentication"
		: event == MOSQ_EVT_EXT_AUTH_START ? "enhanced auth" : "enhanced auth, continued";
	return authenticate(p, ed->client, ed->data_in, ed->data_in_len, how);
}

/* Runs on every turn of the broker's loop (about every 100 ms): sweeps once per second. */
static int on_tick(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data; /* 2.0.11 leaves its times at zero */
	struct plugin *p = userdata;
	time_t now = time(NULL);
	if(now == p->last_sweep) return MOSQ_ERR_SUCCESS;
	p->last_sweep = now;

	struct session **link = &p->sessions;
	while(*link){
		struct session *s = *link;
		if(now < s->exp){
			link = &s->next;
			continue;
		}
		/* Unlinked before the kick: the kick runs on_disconnect for this client at once. */
		*link = s->next;
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "jwt_auth: disconnecting client %s: token expired", s->client_id);
		/* With its will, like any other connection lost without a DISCONNECT of its own. */
		mosquitto_kick_client_by_clientid(s->client_id, true);
		mosquitto_free(s->client_id);
		mosquitto_free(s);
	}
	return MOSQ_ERR_SUCCESS;
}

static int on_disconnect(int event, void *event_data, void *userdata)
{
	(void)event;
	struct mosquitto_evt_disconnect *ed = event_data;
	forget_session(userdata, ed->client);
	return MOSQ_ERR_SUCCESS;
}

static const char *option(const struct mosquitto_opt *options, int count, const char *key)
{
	for(int i = 0; i < count; i++){
		if(strcmp(options[i].key, key) == 0) return options[i].value;
	}
	return NULL;
}

static EVP_PKEY *read_rsa_key(const char *path)
{
	FILE *file = fopen(path, "r");
	if(!file) return NULL;
	EVP_PKEY *key = PEM_read_PUBKEY(file, NULL, NULL, NULL);
	fclose(file);
	if(key && EVP_PKEY_base_id(key) != EVP_PKEY_RSA){
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

static void free_plugin(struct plugin *p)
{
	if(!p) return;
	while(p->sessions) forget_session(p, p->sessions->client);
	EVP_PKEY_free(p->key);
	mosquitto_free(p->audiences);
	mosquitto_free(p->issuers);
	mosquitto_free(p->method);
	mosquitto_free(p);
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options, int option_count)
{
	const char *key_file = option(options, option_count, "public_key_file");
	const char *audience = option(options, option_count, "audience");
	const char *issuer = option(options, option_count, "issuer");
	const char *method = option(options, option_count, "method");
	if(!key_file || !audience || !audience[0]){
		mosquitto_log_printf(MOSQ_LOG_ERR, "jwt_auth: plugin_opt_public_key_file and plugin_opt_audience are required");
		return MOSQ_ERR_INVAL;
	}

	struct plugin *p = mosquitto_calloc(1, sizeof(*p));
	if(!p) return MOSQ_ERR_NOMEM;
	p->identifier = identifier;
	p->audiences = mosquitto_strdup(audience);
	p->issuers = issuer && issuer[0] ? mosquitto_strdup(issuer) : NULL;
	p->method = mosquitto_strdup(method && method[0] ? method : "OAUTH2-JWT");
	p->key = read_rsa_key(key_file);
	if(!p->key){
		mosquitto_log_printf(MOSQ_LOG_ERR, "jwt_auth: cannot read an RSA public key from %s", key_file);
		free_plugin(p);
		return MOSQ_ERR_INVAL;
	}
	if(!p->audiences || !p->method || ((issuer && issuer[0]) && !p->issuers)){
		free_plugin(p);
		return MOSQ_ERR_NOMEM;
	}

	int rc = mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, p);
	if(!rc) rc = mosquitto_callback_register(identifier, MOSQ_EVT_EXT_AUTH_START, on_ext_auth, NULL, p);
	if(!rc) rc = mosquitto_callback_register(identifier, MOSQ_EVT_EXT_AUTH_CONTINUE, on_ext_auth, NULL, p);
	if(!rc) rc = mosquitto_callback_register(identifier, MOSQ_EVT_TICK, on_tick, NULL, p);
	if(!rc) rc = mosquitto_callback_register(identifier, MOSQ_EVT_DISCONNECT, on_disconnect, NULL, p);
	if(rc){
		free_plugin(p);
		return rc;
	}
	*userdata = p;
	mosquitto_log_printf(MOSQ_LOG_INFO, "jwt_auth: audience %s, issuer %s, method %s",
			p->audiences, p->issuers ? p->issuers : "(any)", p->method);
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)options;
	(void)option_count;
	struct plugin *p = userdata;
	if(!p) return MOSQ_ERR_SUCCESS;
	mosquitto_callback_unregister(p->identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
	mosquitto_callback_unregister(p->identifier, MOSQ_EVT_EXT_AUTH_START, on_ext_auth, NULL);
	mosquitto_callback_unregister(p->identifier, MOSQ_EVT_EXT_AUTH_CONTINUE, on_ext_auth, NULL);
	mosquitto_callback_unregister(p->identifier, MOSQ_EVT_TICK, on_tick, NULL);
	mosquitto_callback_unregister(p->identifier, MOSQ_EVT_DISCONNECT, on_disconnect, NULL);
	free_plugin(p);
	return MOSQ_ERR_SUCCESS;
}
