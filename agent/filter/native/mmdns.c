/* The DNS filter's blocked path in C: drain the UDP socket, answer listed names.
 *
 * Why: in Python every datagram costs two syscalls plus object churn (~17 us here), more
 * than dnsmasq's whole path. This library is called once per epoll wake-up (through
 * ctypes, no Python headers, so it cross-compiles for the arm64 image): it reads up to
 * MM_BATCH datagrams with recvmmsg, answers the ones a block list names with NXDOMAIN
 * (byte for byte what agent/filter/server.py sends) in one sendmmsg, and leaves every
 * other datagram, untouched, to Python: forwarded names, allow-listed names, canaries,
 * anything unusual or malformed. It never decides "forward" itself, so every rule that
 * is not "listed and not allowed" stays in one place (agent/filter/match.py).
 *
 * A datagram is hostile input: every read is bounds-checked against its length.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>

#define MM_ABI 1
#define MM_BATCH 64
#define MM_MSG 4096     /* the Python path reads 4096 bytes too */
#define MM_REPLY 512    /* header 12 + name 255 + type/class 4 + OPT 11 = 282 at most */
#define MM_NAME 256
#define MAX_NAME 255
#define MAX_LABEL 63

/* One sorted list of 64-bit name hashes behind a bucket index (agent/filter/hashlist.py):
 * bucket b holds hashes[index[b] .. index[b + 1]), b = the top `bits` bits. */
struct mm_list {
    const uint32_t *index;
    const uint64_t *hashes;
    uint64_t count;
    uint32_t bits;
    int32_t reason; /* for block lists: Python's index of the reason */
};

struct mm_profile {
    const struct mm_list *defer; /* full names Python must judge itself (canaries) */
    uint32_t n_defer;
    const struct mm_list *allow;
    uint32_t n_allow;
    const struct mm_list *block; /* in the Matcher's order: the first hit names the reason */
    uint32_t n_block;
};

struct mm_batch {
    /* out: counts */
    uint32_t received;
    uint32_t blocked;
    uint32_t deferred;
    uint32_t send_failed;
    /* out: the datagrams left to Python, by slot */
    uint32_t defer_slot[MM_BATCH];
    uint32_t len[MM_BATCH];
    uint32_t addrlen[MM_BATCH];
    struct sockaddr_in6 addr[MM_BATCH]; /* big enough for IPv4 and IPv6 */
    /* out: the blocked names (lowercase wire form) and reasons, for the journal */
    uint16_t name_len[MM_BATCH];
    int32_t reason[MM_BATCH];
    uint8_t name[MM_BATCH][MM_NAME];
    /* buffers */
    uint8_t buf[MM_BATCH][MM_MSG];
    uint8_t reply[MM_BATCH][MM_REPLY];
};

int mm_abi(void) { return MM_ABI; }
size_t mm_batch_size(void) { return sizeof(struct mm_batch); }
size_t mm_batch_buf_offset(void) { return offsetof(struct mm_batch, buf); }
size_t mm_batch_addr_offset(void) { return offsetof(struct mm_batch, addr); }
size_t mm_batch_name_offset(void) { return offsetof(struct mm_batch, name); }

/* ---- BLAKE2b with an 8-byte digest, no key (RFC 7693), for names of at most 255 bytes */

static const uint64_t blake2b_iv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

static const uint8_t blake2b_sigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static inline uint64_t rotr64(uint64_t x, unsigned n) { return (x >> n) | (x << (64 - n)); }

static inline uint64_t load64_le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

#define G(a, b, c, d, x, y)              \
    do {                                 \
        v[a] = v[a] + v[b] + (x);        \
        v[d] = rotr64(v[d] ^ v[a], 32);  \
        v[c] = v[c] + v[d];              \
        v[b] = rotr64(v[b] ^ v[c], 24);  \
        v[a] = v[a] + v[b] + (y);        \
        v[d] = rotr64(v[d] ^ v[a], 16);  \
        v[c] = v[c] + v[d];              \
        v[b] = rotr64(v[b] ^ v[c], 63);  \
    } while (0)

static void blake2b_compress(uint64_t h[8], const uint8_t block[128], uint64_t t, int last) {
    uint64_t m[16], v[16];
    for (int i = 0; i < 16; i++) m[i] = load64_le(block + 8 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = blake2b_iv[i];
    }
    v[12] ^= t; /* the counter's high word stays 0: inputs are far below 2^64 bytes */
    if (last) v[14] = ~v[14];
    for (int r = 0; r < 12; r++) {
        const uint8_t *s = blake2b_sigma[r];
        G(0, 4, 8, 12, m[s[0]], m[s[1]]);
        G(1, 5, 9, 13, m[s[2]], m[s[3]]);
        G(2, 6, 10, 14, m[s[4]], m[s[5]]);
        G(3, 7, 11, 15, m[s[6]], m[s[7]]);
        G(0, 5, 10, 15, m[s[8]], m[s[9]]);
        G(1, 6, 11, 12, m[s[10]], m[s[11]]);
        G(2, 7, 8, 13, m[s[12]], m[s[13]]);
        G(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

/* name_hash() of agent/filter/hashlist.py: the digest's 8 bytes read little-endian. */
uint64_t mm_name_hash(const uint8_t *data, size_t len) {
    uint64_t h[8];
    uint8_t block[128];
    uint64_t t = 0;
    memcpy(h, blake2b_iv, sizeof h);
    h[0] ^= 0x01010000ULL ^ 8; /* depth 1, fanout 1, no key, 8-byte digest */
    while (len > 128) {
        t += 128;
        blake2b_compress(h, data, t, 0);
        data += 128;
        len -= 128;
    }
    memset(block, 0, sizeof block);
    if (len) memcpy(block, data, len);
    t += len;
    blake2b_compress(h, block, t, 1);
    return h[0];
}

/* ---- lookups */

static int list_has(const struct mm_list *l, uint64_t h) {
    uint64_t b = l->bits ? h >> (64 - l->bits) : 0;
    uint64_t lo = l->index[b], hi = l->index[b + 1];
    if (hi > l->count) hi = l->count; /* the Python side validated the file; stay safe */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        uint64_t v = l->hashes[mid];
        if (v == h) return 1;
        if (v < h) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

static int any_has(const struct mm_list *lists, uint32_t n, const uint64_t *hs, int nh) {
    for (uint32_t i = 0; i < n; i++)
        for (int k = 0; k < nh; k++)
            if (list_has(&lists[i], hs[k])) return 1;
    return 0;
}

/* ---- one datagram: -1 = leave it to Python, else the block list's reason */

static const uint8_t OPT_RR[11] = {0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};

struct question {
    size_t qend;   /* end of the name */
    size_t end;    /* end of the question (name + type + class) */
    int edns;
    uint8_t lower[MM_NAME];
    size_t name_len;
};

/* The subset of dnswire.parse_query's accepted queries that needs no judgement call:
 * anything else (compression, bad counts, other classes...) returns 0 and Python replies. */
static int parse(const uint8_t *m, size_t size, struct question *q) {
    if (size < 12) return 0;
    if (m[2] & 0x80) return 0;          /* a response */
    if ((m[2] >> 3) & 0x0F) return 0;   /* opcode other than QUERY */
    unsigned qd = (m[4] << 8) | m[5], an = (m[6] << 8) | m[7];
    unsigned ns = (m[8] << 8) | m[9], ar = (m[10] << 8) | m[11];
    if (qd != 1 || an || ns || ar > 1) return 0;
    size_t pos = 12;
    for (;;) {
        if (pos >= size) return 0;
        uint8_t len = m[pos];
        if (len == 0) break;
        if (len > MAX_LABEL) return 0;  /* a compression pointer: Python reads those */
        pos += (size_t)len + 1;
    }
    q->qend = pos + 1;
    q->name_len = q->qend - 12;
    if (q->name_len > MAX_NAME) return 0;
    if (q->qend + 4 > size) return 0;
    unsigned qclass = (m[q->qend + 2] << 8) | m[q->qend + 3];
    q->end = q->qend + 4;
    q->edns = 0;
    if (ar) {
        size_t e = q->end;
        if (e + 11 > size || m[e] != 0 || m[e + 1] != 0 || m[e + 2] != 41) return 0;
        size_t rdlen = ((size_t)m[e + 9] << 8) | m[e + 10];
        if (e + 11 + rdlen > size) return 0;
        q->edns = 1;
    }
    if (qclass != 1) return 0;
    for (size_t i = 0; i < q->name_len; i++) {
        uint8_t c = m[12 + i];
        q->lower[i] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
    }
    return 1;
}

static int judge(const struct mm_profile *p, const struct question *q) {
    const uint8_t *w = q->lower;
    uint64_t hs[128];
    int nh = 0;
    /* the name and each parent but the top-level label, longest first (match.py) */
    size_t pos = 0;
    while (pos < q->name_len && w[pos]) {
        size_t next = pos + 1 + w[pos];
        if (next >= q->name_len || !w[next]) break;
        hs[nh++] = mm_name_hash(w + pos, q->name_len - pos);
        pos = next;
    }
    if (nh == 0) return -1;
    if (any_has(p->defer, p->n_defer, hs, 1)) return -1;
    if (any_has(p->allow, p->n_allow, hs, nh)) return -1;
    for (uint32_t i = 0; i < p->n_block; i++)
        for (int k = 0; k < nh; k++)
            if (list_has(&p->block[i], hs[k])) return p->block[i].reason;
    return -1;
}

static size_t nxdomain(const uint8_t *m, const struct question *q, uint8_t *out) {
    out[0] = m[0];
    out[1] = m[1];
    out[2] = 0x80 | (m[2] & 0x79); /* QR, the query's opcode and RD */
    out[3] = 0x83;                 /* RA, NXDOMAIN */
    static const uint8_t counts[8] = {0, 1, 0, 0, 0, 0, 0, 0};
    memcpy(out + 4, counts, 8);
    if (q->edns) out[11] = 1;
    size_t qlen = q->end - 12;
    memcpy(out + 12, m + 12, qlen); /* the question as asked (its case kept) */
    size_t n = 12 + qlen;
    if (q->edns) {
        memcpy(out + n, OPT_RR, sizeof OPT_RR);
        n += sizeof OPT_RR;
    }
    return n;
}

/* Drain up to MM_BATCH datagrams from `fd` (non-blocking). Returns the number received
 * (0 when none were waiting), or -errno. */
int mm_drain(int fd, const struct mm_profile *p, struct mm_batch *b, int want_names) {
    struct mmsghdr in[MM_BATCH], out[MM_BATCH];
    struct iovec iov_in[MM_BATCH], iov_out[MM_BATCH];
    b->received = b->blocked = b->deferred = b->send_failed = 0;
    for (int i = 0; i < MM_BATCH; i++) {
        iov_in[i].iov_base = b->buf[i];
        iov_in[i].iov_len = MM_MSG;
        memset(&in[i].msg_hdr, 0, sizeof in[i].msg_hdr);
        in[i].msg_hdr.msg_name = &b->addr[i];
        in[i].msg_hdr.msg_namelen = sizeof b->addr[i];
        in[i].msg_hdr.msg_iov = &iov_in[i];
        in[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd, in, MM_BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
    b->received = (uint32_t)n;
    int replies = 0;
    struct question q;
    for (int i = 0; i < n; i++) {
        size_t size = in[i].msg_len;
        b->len[i] = (uint32_t)size;
        b->addrlen[i] = in[i].msg_hdr.msg_namelen;
        int reason = -1;
        if (!(in[i].msg_hdr.msg_flags & MSG_TRUNC) && parse(b->buf[i], size, &q))
            reason = judge(p, &q);
        if (reason < 0) {
            b->defer_slot[b->deferred++] = (uint32_t)i;
            continue;
        }
        size_t rlen = nxdomain(b->buf[i], &q, b->reply[replies]);
        iov_out[replies].iov_base = b->reply[replies];
        iov_out[replies].iov_len = rlen;
        memset(&out[replies].msg_hdr, 0, sizeof out[replies].msg_hdr);
        out[replies].msg_hdr.msg_name = &b->addr[i];
        out[replies].msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
        out[replies].msg_hdr.msg_iov = &iov_out[replies];
        out[replies].msg_hdr.msg_iovlen = 1;
        if (want_names) {
            memcpy(b->name[b->blocked], q.lower, q.name_len);
            b->name_len[b->blocked] = (uint16_t)q.name_len;
        }
        b->reason[b->blocked] = reason;
        b->blocked++;
        replies++;
    }
    int sent = 0;
    while (sent < replies) {
        int r = sendmmsg(fd, out + sent, (unsigned)(replies - sent), MSG_DONTWAIT);
        if (r > 0) {
            sent += r;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        /* full socket buffer or an unreachable client: skip that one (UDP may drop;
         * the Python path ignores sendto errors the same way) */
        b->send_failed++;
        sent++;
    }
    return n;
}
