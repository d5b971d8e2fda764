// SPDX-License-Identifier: GPL-2.0

#include <net/genetlink.h>

struct sk_buff *rust_helper_genlmsg_new(size_t payload, gfp_t flags)
{
	return genlmsg_new(payload, flags);
}

void rust_helper_genlmsg_end(struct sk_buff *skb, void *hdr)
{
	genlmsg_end(skb, hdr);
}

void rust_helper_nlmsg_free(struct sk_buff *skb)
{
	nlmsg_free(skb);
}

int rust_helper_nla_put_u8(struct sk_buff *skb, int attrtype, u8 value)
{
	return nla_put_u8(skb, attrtype, value);
}

int rust_helper_nla_put_u32(struct sk_buff *skb, int attrtype, u32 value)
{
	return nla_put_u32(skb, attrtype, value);
}

int rust_helper_nla_put_u64_64bit(struct sk_buff *skb, int attrtype, u64 value,
				  int padattr)
{
	return nla_put_u64_64bit(skb, attrtype, value, padattr);
}

int rust_helper_nla_put_string(struct sk_buff *skb, int attrtype,
			       const char *str)
{
	return nla_put_string(skb, attrtype, str);
}

u8 rust_helper_nla_get_u8(const struct nlattr *nla)
{
	return nla_get_u8(nla);
}

u32 rust_helper_nla_get_u32(const struct nlattr *nla)
{
	return nla_get_u32(nla);
}

s32 rust_helper_nla_get_s32(const struct nlattr *nla)
{
	return nla_get_s32(nla);
}
